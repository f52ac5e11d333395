"""Presence: a RoomActor per room, and the loop-side registry that finds them.

A RoomActor (a LoopActor) holds each peer's data and hands every member's connection
the whole peer list on each change, encoded once per change for all of them (JSON
once, and the bytes once per transport). Changes that arrive together are sent as one
(the broadcast is queued behind them), and a peer updating faster than PRESENCE_RATE
is coalesced: its latest data wins and goes out when its interval has passed.

Members are reached by a direct call to their connection's outgoing path (a
`PresenceSink`, on the same loop thread), not by a message per member.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from typing import Any, Protocol

import pykka
import ujson

from actors.bridge import ask
from actors.fanout import FanOut
from actors.runtime import LoopActor

ROOM_RE = re.compile(r"^[A-Za-z0-9_.:@~-]{1,128}$")
"""Room names: 1-128 letters, digits or _ . : @ ~ - (safe in a URL path)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceChange:
    """A room's peers as one message for every member; `wire` caches its bytes per
    transport (loop thread only)."""

    room: str
    text: str
    wire: dict[type, bytes] = dataclasses.field(default_factory=dict, compare=False, repr=False)


class PresenceSink(Protocol):
    """A member's connection (actors.connection.Outbox); loop thread only."""

    def presence_change(self, change: PresenceChange) -> None:
        """Send `change` unless the connection left the room; never blocks."""


@dataclasses.dataclass(frozen=True, slots=True)
class Enter:
    peer_id: str
    user_id: str | None
    data: Any
    sink: PresenceSink


@dataclasses.dataclass(frozen=True, slots=True)
class Update:
    peer_id: str
    data: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Leave:
    peer_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Peers:
    """Ask: the peers as `[{id, userId, data}]`."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Flush:
    peer_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Broadcast:
    pass


@dataclasses.dataclass(slots=True)
class _Peer:
    user_id: str | None
    data: Any
    sink: PresenceSink
    last_update: float = 0.0
    pending: Any = None
    has_pending: bool = False


class RoomActor(LoopActor):
    """The peers of one room; every member hears of every change."""

    def __init__(self, name: str, min_interval: float, fanout_turn: float) -> None:
        super().__init__()
        self._name = name
        self._min_interval = min_interval
        self._peers: dict[str, _Peer] = {}
        self._dirty = False
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._fanout: FanOut[PresenceSink] = FanOut(fanout_turn)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Enter):
            self._peers[message.peer_id] = _Peer(message.user_id, message.data, message.sink)
            self._changed()
        elif isinstance(message, Update):
            self._update(message.peer_id, message.data)
        elif isinstance(message, _Flush):
            self._timers.pop(message.peer_id, None)
            peer = self._peers.get(message.peer_id)
            if peer is not None and peer.has_pending:
                self._update(message.peer_id, peer.pending)
        elif isinstance(message, Leave):
            if self._peers.pop(message.peer_id, None) is not None:
                timer = self._timers.pop(message.peer_id, None)
                if timer is not None:
                    timer.cancel()
                self._changed()
        elif isinstance(message, _Broadcast):
            self._broadcast()
        elif isinstance(message, Peers):
            return self._wire()
        return None

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
        peer.data, peer.pending, peer.has_pending = data, None, False
        peer.last_update = now
        self._changed()

    def _changed(self) -> None:
        if not self._dirty:
            self._dirty = True
            self.actor_ref.tell(_Broadcast())  # behind what is queued: one send for all

    def _wire(self) -> list[dict[str, Any]]:
        return [{"id": pid, "userId": p.user_id, "data": p.data} for pid, p in self._peers.items()]

    def _broadcast(self) -> None:
        self._dirty = False
        text = ujson.dumps(
            {"type": "presence-change", "room": self._name, "peers": self._wire()},
            ensure_ascii=False,
            escape_forward_slashes=False,
        )
        change = PresenceChange(self._name, text)
        # The whole peer list: members a previous change has not reached yet skip it.
        self._fanout.replace(
            [peer.sink for peer in self._peers.values()], lambda sink: sink.presence_change(change)
        )


@dataclasses.dataclass(slots=True)
class _Room:
    ref: pykka.ActorRef[Any]
    members: int = 0


class Rooms:
    """Room name → RoomActor, created on first enter, stopped when the last peer
    leaves. Loop thread only; membership is counted here, synchronously, so a room is
    never stopped while an enter is on its way to it."""

    def __init__(self, rate: float, fanout_turn: float) -> None:
        self._min_interval = 1.0 / rate
        self._fanout_turn = fanout_turn
        self._rooms: dict[str, _Room] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def enter(
        self, room: str, peer_id: str, user_id: str | None, data: Any, sink: PresenceSink
    ) -> None:
        entry = self._rooms.get(room)
        if entry is None:
            ref = RoomActor.start(room, self._min_interval, self._fanout_turn)
            entry = self._rooms[room] = _Room(ref)
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
