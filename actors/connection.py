"""ConnectionActor: one per WebSocket or SSE stream, on the IOLoop (a LoopActor).

It holds what a connection has open (subscriptions, presence rooms) and owns its
outgoing data path. Subscription and room actors `tell` it frames, never wait for it:
a slow socket must not hold up the computation every other socket shares.

Flow control: while fewer than WS_BUFFER_SOFT bytes wait unsent, frames are written at
once. Past it, q-diffs are kept per subscription and coalesced into one (carrying the
last tx), presence changes per room (latest wins), until the socket drains; past
WS_BUFFER_HARD the connection is closed with a reason. q-init and replies are never
held back, so a subscription's q-init always precedes its diffs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from actorbase.errors import InvalidArgument, NotFound
from actors.dispatcher import Dispatcher
from actors.room import Rooms
from actors.runtime import LoopActor
from actors.subscription import Deliver, Frame, Member, diff_frame
from store.principal import Principal
from store.query.ast import Query
from store.query.live import compose

CLOSE_SLOW = 4008
"""Close code for a client that does not read what it asked for."""


class Socket(Protocol):
    """Where a ConnectionActor writes: a WebSocket or an SSE stream; loop thread only."""

    def send_text(self, text: str) -> None:
        """Queue `text` (one message or event) for the client."""

    def frame(self, kind: str, id_json: str, rest: str, tx: int | None) -> str:
        """The text of a subscription frame for this transport."""

    def buffered(self) -> int:
        """Bytes written but not yet sent."""

    def when_drained(self, below: int, callback: Any) -> None:
        """Call `callback()` once, on the loop, when fewer than `below` bytes are unsent."""

    def close_for(self, code: int, reason: str) -> None:
        """Close the connection with a code and a reason the client sees."""


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
class PresenceOp:
    """Ask: `enter`, `update` or `leave` room `room` with `data`."""

    op: str
    room: str
    data: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceChange:
    """Tell, from a RoomActor: the room's peers, encoded once for every member."""

    room: str
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Drained:
    pass


class ConnectionActor(LoopActor):
    """The open subscriptions and rooms of one connection, and its outgoing path."""

    def __init__(
        self,
        socket: Socket,
        conn_id: str,
        principal: Principal,
        dispatcher: Dispatcher,
        rooms: Rooms,
        max_subscriptions: int,
        max_rooms: int,
        soft_limit: int,
        hard_limit: int,
    ) -> None:
        super().__init__()
        self._socket = socket
        self._conn_id = conn_id
        self._principal = principal
        self._dispatcher = dispatcher
        self._rooms = rooms
        self._max_subscriptions = max_subscriptions
        self._max_rooms = max_rooms
        self._soft = soft_limit
        self._hard = hard_limit
        self._subs: dict[str, Member] = {}
        self._in_rooms: set[str] = set()
        # Held back while the socket is backed up, in arrival order of their first frame.
        self._pending: dict[tuple[str, str | None], tuple[Member, Frame]] = {}
        self._pending_presence: dict[str, str] = {}
        self._closed = False

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            self._deliver(message.member, message.frame)
        elif isinstance(message, PresenceChange):
            self._presence_change(message)
        elif isinstance(message, _Drained):
            self._flush()
        elif isinstance(message, Subscribe):
            self._subscribe(message)
        elif isinstance(message, Unsubscribe):
            member = self._subs.pop(message.sub_id, None)
            if member is None:
                raise NotFound(f"No subscription {message.sub_id!r}")
            self._drop_pending(member.sub_id)
            self._dispatcher.leave(member)
        elif isinstance(message, PresenceOp):
            self._presence(message)
        return None

    def on_stop(self) -> None:
        """Leave every subscription and room: the socket is gone."""
        self._closed = True
        for member in self._subs.values():
            self._dispatcher.leave(member)
        self._subs.clear()
        for room in self._in_rooms:
            self._rooms.leave(room, self._conn_id)
        self._in_rooms.clear()

    # -- control (asks from the protocol handler) ----------------------------------------

    def _subscribe(self, message: Subscribe) -> None:
        if message.sub_id in self._subs:
            raise InvalidArgument(f"id: subscription {message.sub_id!r} is already open")
        if len(self._subs) >= self._max_subscriptions:
            raise InvalidArgument(
                f"Too many subscriptions on this connection (at most {self._max_subscriptions})"
            )
        member = Member(self.actor_ref, message.sub_id, message.id_json)
        self._subs[message.sub_id] = member
        self._dispatcher.join(
            member, message.query, message.normalized, self._principal, message.resume_from
        )

    def _presence(self, message: PresenceOp) -> None:
        room = message.room
        if message.op == "enter":
            if room in self._in_rooms:
                self._rooms.update(room, self._conn_id, message.data)
                return
            if len(self._in_rooms) >= self._max_rooms:
                raise InvalidArgument(f"Too many presence rooms (at most {self._max_rooms})")
            self._in_rooms.add(room)
            self._rooms.enter(
                room, self._conn_id, self._principal.user_id, message.data, self.actor_ref
            )
            return
        if room not in self._in_rooms:
            raise NotFound(f"Not in presence room {room!r}")
        if message.op == "update":
            self._rooms.update(room, self._conn_id, message.data)
        else:
            self._in_rooms.discard(room)
            self._pending_presence.pop(room, None)
            self._rooms.leave(room, self._conn_id)

    # -- the outgoing path ---------------------------------------------------------------

    def _deliver(self, member: Member, frame: Frame) -> None:
        if self._closed or self._subs.get(member.sub_id) is not member:
            return  # unsubscribed meanwhile: a late frame of the old subscription
        if frame.kind == "error":
            # The live query failed: it is over for this member.
            del self._subs[member.sub_id]
            self._dispatcher.leave(member)
        elif frame.kind == "q-diff" and (self._pending or self._backed_up()):
            self._hold(member, frame)
            return
        self._write(self._socket.frame(frame.kind, member.id_json, frame.rest, frame.tx))

    def _presence_change(self, message: PresenceChange) -> None:
        if self._closed or message.room not in self._in_rooms:
            return
        if self._pending_presence or self._backed_up():
            self._pending_presence[message.room] = message.text  # latest wins
            self._await_drain()
            return
        self._write(message.text)

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
        ref = self.actor_ref
        self._socket.when_drained(self._soft + 1, lambda: ref.tell(_Drained()))

    def _drop_pending(self, sub_id: str) -> None:
        for key in [k for k in self._pending if k[0] == sub_id]:
            del self._pending[key]

    def _flush(self) -> None:
        if self._closed:
            return
        pending, self._pending = self._pending, {}
        presence, self._pending_presence = self._pending_presence, {}
        for member, frame in pending.values():
            if self._subs.get(member.sub_id) is member and frame.diff:
                self._write(self._socket.frame(frame.kind, member.id_json, frame.rest, frame.tx))
        for room, text in presence.items():
            if room in self._in_rooms:
                self._write(text)

    def _write(self, text: str) -> None:
        self._socket.send_text(text)
        unsent = self._socket.buffered()
        if unsent > self._hard:
            self._closed = True
            self._socket.close_for(CLOSE_SLOW, f"Slow consumer: {unsent} bytes unsent")
