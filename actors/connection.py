"""ConnectionActor: one per WebSocket or SSE stream, on the IOLoop (a LoopActor).

It holds what a connection has open (subscriptions, presence rooms), and charges its
user's share of them (actors.hub.UserLoad) for its life; control requests
(subscribe, unsubscribe, presence) are asks to it, handled one at a time in order.
Its outgoing data path is an `Outbox` that subscription and room actors call
directly: they run on the same loop thread, so a frame to a socket that is not
backed up costs one send, with no mailbox hop, and the order of their calls is the
order on the wire (a subscription's q-init, then its diffs in tx order). They never
wait for it: a slow socket must not hold up the computation every other socket shares.

Flow control: while fewer than WS_BUFFER_SOFT bytes wait unsent, frames are written at
once. Past it, q-diffs are kept per subscription and coalesced into one (carrying the
last tx), presence changes per room and peer (actors.room.Held), until the socket
drains; past WS_BUFFER_HARD the connection is closed with a reason. q-init and replies are never
held back, so a subscription's q-init always precedes its diffs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from actorbase.errors import ApiError, InvalidArgument, NotFound
from actors.dispatcher import Dispatcher
from actors.hub import UserLoad
from actors.room import Held, PresenceChange, Rooms
from actors.runtime import LoopActor
from actors.subscription import Frame, Member, diff_frame, error_frame, principal_key
from store import permissions
from store.principal import Principal
from store.query.ast import Query
from store.query.live import compose

if TYPE_CHECKING:
    from actors.cluster_rooms import ClusterRooms

CLOSE_SLOW = 4008
"""Close code for a client that does not read what it asked for."""


class Socket(Protocol):
    """Where a connection writes: a WebSocket or an SSE stream; loop thread only."""

    def encode(self, text: str) -> bytes:
        """The bytes that carry `text` (one message or event) on this transport; the
        same for every socket of the transport, so one encoding can be shared."""

    def frame(self, kind: str, id_json: str, rest: str, tx: int | None) -> str:
        """The text of a subscription frame for this transport."""

    def send_bytes(self, data: bytes) -> None:
        """Queue `data` (from `encode`) for the client."""

    def buffered(self) -> int:
        """Bytes written but not yet sent."""

    def when_drained(self, below: int, callback: Callable[[], None]) -> None:
        """Call `callback()` once, on the loop, when fewer than `below` bytes are unsent."""

    def close_for(self, code: int, reason: str) -> None:
        """Close the connection with a code and a reason the client sees."""

    def query_failed(self, error: ApiError) -> bool:
        """A live query of this connection failed and its error frame is next: True if
        the connection answered the failure itself (the frame is then not sent)."""


class Unsent:
    """A transport's bytes written but not yet sent, and one callback waiting for them
    to drain: the bookkeeping behind `Socket.buffered` and `Socket.when_drained`, the
    same for WebSocket and SSE. Loop thread only."""

    __slots__ = ("_drain", "bytes")

    def __init__(self) -> None:
        self.bytes = 0
        self._drain: tuple[int, Callable[[], None]] | None = None

    def track(self, n: int, written: asyncio.Future[None]) -> None:
        """`n` bytes are unsent until `written` (the stream's write or flush) is done."""
        self.bytes += n
        written.add_done_callback(functools.partial(self._sent, n))

    def when_drained(self, below: int, callback: Callable[[], None]) -> None:
        if self.bytes < below:
            callback()
        else:
            self._drain = (below, callback)

    def _sent(self, n: int, written: asyncio.Future[None]) -> None:
        self.bytes -= n
        if not written.cancelled():
            written.exception()  # a closed stream: the handler's close does the cleanup
        if self._drain is not None and self.bytes < self._drain[0]:
            callback, self._drain = self._drain[1], None
            callback()


@dataclasses.dataclass(frozen=True, slots=True)
class Subscribe:
    """Ask: open subscription `sub_id` (InvalidArgument if taken or over the cap)."""

    sub_id: str
    id_json: str
    query: Query
    normalized: str
    resume_from: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Ask: close subscription `sub_id` (NotFound if there is none)."""

    sub_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Reauth:
    """Ask: the connection now speaks for `principal` (the same user, from a fresh
    token; role and claims may have changed). Every live query is re-checked under it
    and, if its permission context changed, moved to that context's computation (a
    fresh q-init), or ended with an `error` for its id if it is no longer allowed;
    rooms it may no longer enter are left. Returns the errors naming those rooms."""

    principal: Principal


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceOp:
    """Ask: `enter`, `update` or `leave` room `room` with `data`."""

    op: str
    room: str
    data: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Refused:
    """The database found room `room` full: this connection is not in it after all."""

    room: str


class Outbox:
    """The outgoing path of one connection: its open members and rooms, and the frames
    held back while its socket is backed up. Loop thread only.

    Subscription and room actors call `deliver` and `presence_change` directly; the
    ConnectionActor updates the open members and rooms before joining and after
    leaving, so a frame for a member or room that is no longer open is dropped.
    """

    __slots__ = (
        "_closed",
        "_hard",
        "_on_error",
        "_pending",
        "_pending_presence",
        "_socket",
        "_soft",
        "_transport",
        "rooms",
        "subs",
    )

    def __init__(
        self,
        socket: Socket,
        soft_limit: int,
        hard_limit: int,
        on_error: Callable[[Member], None],
    ) -> None:
        self._socket = socket
        self._transport = type(socket)  # the key of shared encodings
        self._soft = soft_limit
        self._hard = hard_limit
        self.subs: dict[str, Member] = {}
        # A dict as a set: an empty set keeps an 8-slot table (216 bytes), an empty dict none.
        self.rooms: dict[str, None] = {}
        # Held back while the socket is backed up, in arrival order of their first frame.
        self._pending: dict[tuple[str, str | None], tuple[Member, Frame]] = {}
        self._pending_presence: dict[str, Held] = {}
        self._closed = False
        self._on_error = on_error  # a member whose live query failed (its error frame is sent)

    def close(self) -> None:
        """Send nothing more: the connection is gone."""
        self._closed = True
        self._pending.clear()
        self._pending_presence.clear()

    def leave_room(self, room: str) -> None:
        self.rooms.pop(room, None)
        self._pending_presence.pop(room, None)

    def drop(self, sub_id: str) -> Member | None:
        """Close subscription `sub_id`: its held-back diffs and later frames are dropped."""
        for key in [k for k in self._pending if k[0] == sub_id]:
            del self._pending[key]
        return self.subs.pop(sub_id, None)

    def deliver(self, member: Member, frame: Frame) -> None:
        """Send `frame` for `member` (actors.subscription.Sink)."""
        if self._closed or self.subs.get(member.sub_id) is not member:
            return  # unsubscribed meanwhile: a late frame of the old subscription
        if frame.kind == "error":
            # The live query failed: it is over for this member.
            del self.subs[member.sub_id]
            self._on_error(member)
            if frame.error is not None and self._socket.query_failed(frame.error):
                return
        # An empty q-diff (a resume's "nothing changed") is never held: the client waits
        # for it, and `_flush` drops empty diffs.
        elif frame.kind == "q-diff" and frame.diff and (self._pending or self._backed_up()):
            self._hold(member, frame)
            return
        self._write(self._encoded(member, frame))

    def presence_change(self, change: PresenceChange) -> None:
        """Send a room's snapshot or deltas (from its RoomActor), unless this
        connection left it."""
        if self._closed or change.room not in self.rooms:
            return
        if self._pending_presence or self._backed_up():
            held = self._pending_presence.get(change.room)
            if held is None:
                held = self._pending_presence[change.room] = Held()
            held.add(change)
            self._await_drain()
            return
        self._write(self._encoded_change(change))

    def _encoded(self, member: Member, frame: Frame) -> bytes:
        key = (self._transport, member.id_json)
        data = frame.wire.get(key)
        if data is None:
            socket = self._socket
            text = socket.frame(frame.kind, member.id_json, frame.rest, frame.tx)
            data = frame.wire[key] = socket.encode(text)
        return data

    def _encoded_change(self, change: PresenceChange) -> bytes:
        data = change.wire.get(self._transport)
        if data is None:
            encode = self._socket.encode
            data = change.wire[self._transport] = b"".join(encode(t) for t in change.texts())
        return data

    def _backed_up(self) -> bool:
        return self._socket.buffered() > self._soft

    def _hold(self, member: Member, frame: Frame) -> None:
        key = (member.sub_id, frame.diff.entity if frame.multi and frame.diff else None)
        held = self._pending.get(key)
        if held is not None and held[1].diff is not None and frame.diff is not None:
            merged = compose(held[1].diff, frame.diff)
            frame = diff_frame(merged, frame.tx or 0, frame.multi)
        self._pending[key] = (member, frame)
        self._await_drain()

    def _await_drain(self) -> None:
        self._socket.when_drained(self._soft + 1, self._flush)

    def _flush(self) -> None:
        if self._closed:
            return
        pending, self._pending = self._pending, {}
        presence, self._pending_presence = self._pending_presence, {}
        for member, frame in pending.values():
            if self.subs.get(member.sub_id) is member and frame.diff:
                self._write(self._encoded(member, frame))
        for room, held in presence.items():
            if room in self.rooms:
                for message in held.messages():
                    if isinstance(message, PresenceChange):
                        self._write(self._encoded_change(message))
                    else:
                        self._write(self._socket.encode(message.text))

    def _write(self, data: bytes) -> None:
        self._socket.send_bytes(data)
        unsent = self._socket.buffered()
        if unsent > self._hard:
            self.close()
            self._socket.close_for(CLOSE_SLOW, f"Slow consumer: {unsent} bytes unsent")


class ConnectionActor(LoopActor):
    """The open subscriptions and rooms of one connection; its Outbox writes."""

    def __init__(
        self,
        socket: Socket,
        conn_id: str,
        principal: Principal,
        dispatcher: Dispatcher,
        rooms: Rooms | ClusterRooms,
        max_subscriptions: int,
        max_rooms: int,
        soft_limit: int,
        hard_limit: int,
        users: UserLoad,
    ) -> None:
        """ResourceExceeded (and no actor) if the user has all the connections allowed."""
        # Charged for the actor's whole life; the admin token is not counted.
        self._user = None if principal.is_admin else principal.user_id
        users.connect(self._user)
        self._users = users
        super().__init__()
        self._conn_id = conn_id
        self._principal = principal
        self._dispatcher = dispatcher
        self._rooms = rooms
        self._max_subscriptions = max_subscriptions
        self._max_rooms = max_rooms
        self.outbox = Outbox(socket, soft_limit, hard_limit, self._failed)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Subscribe):
            self._subscribe(message)
        elif isinstance(message, Unsubscribe):
            member = self.outbox.drop(message.sub_id)
            if member is None:
                raise NotFound(f"No subscription {message.sub_id!r}")
            self._dispatcher.leave(member)
            self._users.unsubscribe(self._user)
        elif isinstance(message, PresenceOp):
            return self._presence(message)
        elif isinstance(message, _Refused):
            self.outbox.leave_room(message.room)
        elif isinstance(message, Reauth):
            return self._reauth(message.principal)
        return None

    def on_stop(self) -> None:
        """Leave every subscription and room: the socket is gone."""
        outbox = self.outbox
        outbox.close()
        for member in outbox.subs.values():
            self._dispatcher.leave(member)
        self._users.unsubscribe(self._user, len(outbox.subs))
        outbox.subs.clear()
        for room in outbox.rooms:
            self._rooms.leave(room, self._conn_id)
        outbox.rooms.clear()
        self._users.disconnect(self._user)

    def _failed(self, member: Member) -> None:
        """A live query failed (its error frame is sent): it no longer counts."""
        self._dispatcher.leave(member)
        self._users.unsubscribe(self._user)

    def _subscribe(self, message: Subscribe) -> None:
        subs = self.outbox.subs
        if message.sub_id in subs:
            raise InvalidArgument(f"id: subscription {message.sub_id!r} is already open")
        if len(subs) >= self._max_subscriptions:
            raise InvalidArgument(
                f"Too many subscriptions on this connection (at most {self._max_subscriptions})"
            )
        self._users.subscribe(self._user)
        member = Member(
            self.outbox, message.sub_id, message.id_json, message.query, message.normalized
        )
        subs[message.sub_id] = member
        self._dispatcher.join(
            member, message.query, message.normalized, self._principal, message.resume_from
        )

    def _reauth(self, principal: Principal) -> list[ApiError]:
        old, self._principal = self._principal, principal
        if principal_key(principal) == principal_key(old):
            return []  # the same rows, fields and rooms: nothing to re-check
        outbox = self.outbox
        for sub_id, member in list(outbox.subs.items()):
            assert member.query is not None
            try:
                permissions.check_query(principal, member.query)
            except ApiError as exc:
                outbox.deliver(member, error_frame(exc))  # ends it: the error, then leave
                continue
            # A new member: frames still on their way from the old computation are dropped.
            outbox.drop(sub_id)
            self._dispatcher.leave(member)
            moved = Member(outbox, sub_id, member.id_json, member.query, member.normalized)
            outbox.subs[sub_id] = moved
            self._dispatcher.join(moved, member.query, member.normalized, principal)
        denied = []
        for room in list(outbox.rooms):
            try:
                permissions.check_room(principal, room)
            except ApiError as exc:
                outbox.leave_room(room)
                self._rooms.leave(room, self._conn_id)
                denied.append(exc)
        return denied

    def _presence(self, message: PresenceOp) -> asyncio.Future[None] | None:
        """None, or (rooms across processes) a future of the enter the caller awaits."""
        room = message.room
        rooms = self.outbox.rooms
        if message.op == "enter":
            if room in rooms:
                self._rooms.update(room, self._conn_id, message.data)
                return
            if len(rooms) >= self._max_rooms:
                raise InvalidArgument(f"Too many presence rooms (at most {self._max_rooms})")
            # Raises if the room is full; ours before its snapshot can come (a tell).
            entered = self._rooms.enter(
                room, self._conn_id, self._principal.user_id, message.data, self.outbox
            )
            rooms[room] = None
            if entered is not None:
                # Across processes the database says later whether the room had space.
                ref = self.actor_ref
                entered.add_done_callback(
                    lambda f: (
                        f.cancelled()
                        or f.exception() is None
                        or (ref.is_alive() and ref.tell(_Refused(room)))
                    )
                )
            return entered
        if room not in rooms:
            raise NotFound(f"Not in presence room {room!r}")
        if message.op == "update":
            self._rooms.update(room, self._conn_id, message.data)
        else:
            self.outbox.leave_room(room)
            self._rooms.leave(room, self._conn_id)
