"""Presence: a RoomActor per room, and the loop-side registry that finds them.

A member hears of its room as a snapshot, then as deltas. The connection that enters
gets every peer, `{type: "presence-change", room, peers: [{id, userId, data}]}`; from
then on each change reaches every member as the one peer's `join`, `update` or `leave`,
`{type: "presence-change", room, event, peer: {id, userId, data}}` (a leave carries the
peer's last data). A change costs each member one peer's bytes, not the whole room's:
re-sending every peer to every member on each change was quadratic in the room's size.

Changes are sent in batches, each encoded once for every member (JSON once, and the
bytes once per transport). A change marks its peer; a batch carries one message per
peer marked since the last one, with its latest data, and the next batch starts only
once the last has reached every member (FanOut), so a burst, or a room too large to
reach at once, never queues more than one batch: what changes meanwhile is coalesced,
latest wins. A peer updating faster than PRESENCE_RATE is coalesced too: its latest
data goes out when its interval has passed. A room holds at most PRESENCE_MAX_PEERS.

Members are reached by a direct call to their connection's outgoing path (a
`PresenceSink`, on the same loop thread), not by a message per member.

On PostgreSQL rooms span processes (actors.cluster_rooms): a RoomActor then mirrors
the room as the database's notifications tell it, peers of other processes without a
sink (in the room, not members here), and is never rate-limited itself (that is done
before the database). A batch lists its peers in the order of their latest change, so
members everywhere hear one order, whatever the batches.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pykka
import ujson

from actorbase.errors import ResourceExceeded
from actors.bridge import ask
from actors.fanout import FanOut
from actors.runtime import LoopActor

ROOM_RE = re.compile(r"^[A-Za-z0-9_.:@~-]{1,128}$")
"""Room names: 1-128 letters, digits or _ . : @ ~ - (safe in a URL path)."""


def _dumps(value: Any) -> str:
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Delta:
    """One peer's `join`, `update` or `leave`, as a member that knows the room hears it."""

    room: str
    event: str
    peer: dict[str, Any]
    """`{id, userId, data}`."""
    text: str

    @classmethod
    def of(cls, room: str, event: str, peer: dict[str, Any]) -> Delta:
        message = {"type": "presence-change", "room": room, "event": event, "peer": peer}
        return cls(room, event, peer, _dumps(message))


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceChange:
    """One batch of a room as its members hear it: the snapshot (for members that just
    entered) or the deltas (for the others). `wire` caches the bytes of all its
    messages per transport (loop thread only)."""

    room: str
    snapshot: str | None
    deltas: tuple[Delta, ...] = ()
    wire: dict[type, bytes] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def texts(self) -> tuple[str, ...]:
        return (self.snapshot,) if self.snapshot is not None else tuple(d.text for d in self.deltas)


class Held:
    """A room's messages held back for one member whose socket is backed up: the
    snapshot if one is due, then per peer one message that takes the member from what
    it was last sent to the peer as it is now (a join then an update is one join; a
    join then a leave is nothing). Loop thread only."""

    __slots__ = ("_peers", "_snapshot")

    def __init__(self) -> None:
        self._snapshot: PresenceChange | None = None
        # peer id -> (whether the member knew the peer before these, its latest delta)
        self._peers: dict[str, tuple[bool, Delta]] = {}

    def add(self, change: PresenceChange) -> None:
        if change.snapshot is not None:
            self._snapshot = change  # the room as it is: earlier messages are moot
            self._peers.clear()
            return
        for delta in change.deltas:
            # Re-inserted: held peers go out in the order of their latest change.
            prior = self._peers.pop(delta.peer["id"], None)
            known = prior[0] if prior is not None else delta.event != "join"
            self._peers[delta.peer["id"]] = (known, delta)

    def messages(self) -> Iterator[PresenceChange | Delta]:
        """What to send, in order: the snapshot, then one delta per changed peer."""
        if self._snapshot is not None:
            yield self._snapshot
        for known, delta in self._peers.values():
            event = _event(known, delta.event != "leave")
            if event == delta.event:
                yield delta
            elif event is not None:
                yield Delta.of(delta.room, event, delta.peer)


def _event(known: bool, present: bool) -> str | None:
    """The delta that takes a member that knew (or not) of a peer to its presence now."""
    if present:
        return "update" if known else "join"
    return "leave" if known else None


class PresenceSink(Protocol):
    """A member's connection (actors.connection.Outbox); loop thread only."""

    def presence_change(self, change: PresenceChange) -> None:
        """Send `change` unless the connection left the room; never blocks."""


@dataclasses.dataclass(frozen=True, slots=True)
class Enter:
    peer_id: str
    user_id: str | None
    data: Any
    sink: PresenceSink | None
    """None: a peer of another process (actors.cluster_rooms), in the room but no member here."""


@dataclasses.dataclass(frozen=True, slots=True)
class Update:
    peer_id: str
    data: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Leave:
    peer_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Reset:
    """The room is now `peers` (read afresh from the database): members hear what
    changed as deltas, a member whose peer is now in it gets its snapshot."""

    peers: tuple[tuple[str, str | None, Any, PresenceSink | None], ...]
    """(peer id, user id, data, sink or None)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Peers:
    """Ask: the peers as `[{id, userId, data}]`."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Flush:
    peer_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Batch:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class _Sent:
    pass


@dataclasses.dataclass(slots=True)
class _Peer:
    user_id: str | None
    data: Any
    sink: PresenceSink | None
    last_update: float = 0.0
    pending: Any = None
    has_pending: bool = False

    def wire(self, peer_id: str) -> dict[str, Any]:
        return {"id": peer_id, "userId": self.user_id, "data": self.data}


class RoomActor(LoopActor):
    """The peers of one room; every member hears of every change."""

    def __init__(self, name: str, min_interval: float, fanout_turn: float) -> None:
        super().__init__()
        self._name = name
        self._min_interval = min_interval
        self._peers: dict[str, _Peer] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._fanout: FanOut[PresenceSink] = FanOut(fanout_turn)
        # Since the last batch: peer id -> whether the members knew the peer then.
        self._changed: dict[str, bool] = {}
        self._left: dict[str, dict[str, Any]] = {}  # peers gone meanwhile, as last seen
        self._entered: dict[str, None] = {}  # members owed a snapshot
        self._busy = False  # a batch is queued or on its way to the members

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Enter):
            self._enter(message.peer_id, message.user_id, message.data, message.sink)
        elif isinstance(message, Update):
            self._update(message.peer_id, message.data)
        elif isinstance(message, _Flush):
            self._timers.pop(message.peer_id, None)
            peer = self._peers.get(message.peer_id)
            if peer is not None and peer.has_pending:
                self._update(message.peer_id, peer.pending)
        elif isinstance(message, Leave):
            self._leave(message.peer_id)
        elif isinstance(message, _Batch):
            self._send_batch()
        elif isinstance(message, _Sent):
            self._busy = False
            if self._changed:
                self._schedule()
        elif isinstance(message, Reset):
            self._reset(message.peers)
        elif isinstance(message, Peers):
            return self._wire()
        return None

    def _enter(
        self, peer_id: str, user_id: str | None, data: Any, sink: PresenceSink | None
    ) -> None:
        self._mark(peer_id)
        self._peers[peer_id] = _Peer(user_id, data, sink)
        if sink is not None:
            self._entered[peer_id] = None

    def _reset(self, peers: tuple[tuple[str, str | None, Any, PresenceSink | None], ...]) -> None:
        now = {p[0] for p in peers}
        for peer_id in [pid for pid in self._peers if pid not in now]:
            self._leave(peer_id)
        for peer_id, user_id, data, sink in peers:
            peer = self._peers.get(peer_id)
            if peer is None:
                self._enter(peer_id, user_id, data, sink)
                continue
            if peer.data != data:
                self._mark(peer_id)
                peer.data = data
            if peer.sink is None and sink is not None:
                peer.sink = sink
                self._entered[peer_id] = None
                self._schedule()

    def on_stop(self) -> None:
        self._fanout.cancel()
        for timer in self._timers.values():
            timer.cancel()

    def _update(self, peer_id: str, data: Any) -> None:
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        now = time.monotonic()
        wait = peer.last_update + self._min_interval - now
        if wait > 0:
            peer.pending, peer.has_pending = data, True
            if peer_id not in self._timers:
                ref = self.actor_ref
                self._timers[peer_id] = asyncio.get_running_loop().call_later(
                    wait, lambda: ref.is_alive() and ref.tell(_Flush(peer_id))
                )
            return
        self._mark(peer_id)
        peer.data, peer.pending, peer.has_pending = data, None, False
        peer.last_update = now

    def _leave(self, peer_id: str) -> None:
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        self._mark(peer_id)
        del self._peers[peer_id]
        self._left[peer_id] = peer.wire(peer_id)
        self._entered.pop(peer_id, None)
        timer = self._timers.pop(peer_id, None)
        if timer is not None:
            timer.cancel()

    def _mark(self, peer_id: str) -> None:
        """`peer_id` is about to change: remember whether the members knew it before.
        Re-inserted, so a batch lists peers in the order of their latest change: what
        a member hears is the room's order of changes, less changes a later one of the
        same peer replaced, however the batches fell."""
        known = self._changed.pop(peer_id, peer_id in self._peers)
        self._changed[peer_id] = known
        self._schedule()

    def _schedule(self) -> None:
        if not self._busy:
            self._busy = True
            self.actor_ref.tell(_Batch())  # behind what is queued: one batch for all

    def _send_batch(self) -> None:
        changed, self._changed = self._changed, {}
        left, self._left = self._left, {}
        entered, self._entered = self._entered, {}
        name, peers = self._name, self._peers
        deltas = []
        for pid, known in changed.items():
            peer = peers.get(pid)
            event = _event(known, peer is not None)
            if event is not None:
                deltas.append(Delta.of(name, event, left[pid] if peer is None else peer.wire(pid)))
        fanout = self._fanout
        if entered:
            snapshot = {"type": "presence-change", "room": name, "peers": self._wire()}
            change = PresenceChange(name, _dumps(snapshot))
            sinks = [sink for pid in entered if (sink := peers[pid].sink) is not None]
            fanout.send(sinks, _deliver(change))
        if deltas:
            change = PresenceChange(name, None, tuple(deltas))
            members = [
                p.sink for pid, p in peers.items() if p.sink is not None and pid not in entered
            ]
            fanout.send(members, _deliver(change))
        # The next batch waits until this one reached every member.
        ref = self.actor_ref
        fanout.then(lambda: ref.is_alive() and ref.tell(_Sent()))

    def _wire(self) -> list[dict[str, Any]]:
        return [p.wire(pid) for pid, p in self._peers.items()]


def _deliver(change: PresenceChange) -> Callable[[PresenceSink], None]:
    return lambda sink: sink.presence_change(change)


@dataclasses.dataclass(slots=True)
class _Room:
    ref: pykka.ActorRef[Any]
    members: int = 0


class Rooms:
    """Room name → RoomActor, created on first enter, stopped when the last peer
    leaves. Loop thread only; membership is counted here, synchronously, so a room is
    never stopped while an enter is on its way to it, and never takes more than
    `max_peers`."""

    def __init__(self, rate: float, fanout_turn: float, max_peers: int) -> None:
        self._min_interval = 1.0 / rate
        self._fanout_turn = fanout_turn
        self._max_peers = max_peers
        self._rooms: dict[str, _Room] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def census(self) -> dict[str, int]:
        """Room name → peers, for every room with one (the admin's list of rooms)."""
        return {name: entry.members for name, entry in self._rooms.items()}

    def enter(
        self, room: str, peer_id: str, user_id: str | None, data: Any, sink: PresenceSink
    ) -> None:
        """Add a peer; ResourceExceeded if the room is full."""
        entry = self._rooms.get(room)
        if entry is None:
            ref = RoomActor.start(room, self._min_interval, self._fanout_turn)
            entry = self._rooms[room] = _Room(ref)
        elif entry.members >= self._max_peers:
            raise ResourceExceeded(f"Presence room {room!r} is full ({self._max_peers} peers)")
        entry.members += 1
        entry.ref.tell(Enter(peer_id, user_id, data, sink))

    def update(self, room: str, peer_id: str, data: Any) -> None:
        entry = self._rooms.get(room)
        if entry is not None:
            entry.ref.tell(Update(peer_id, data))

    def leave(self, room: str, peer_id: str) -> None:
        entry = self._rooms.get(room)
        if entry is None:
            return
        entry.members -= 1
        if entry.members > 0:
            entry.ref.tell(Leave(peer_id))
        else:
            del self._rooms[room]
            entry.ref.stop(block=False)

    async def peers(self, room: str) -> list[dict[str, Any]]:
        """The peers of `room` now (none if nobody is in it)."""
        entry = self._rooms.get(room)
        if entry is None:
            return []
        try:
            return await ask(entry.ref, Peers())
        except pykka.ActorDeadError:
            return []
