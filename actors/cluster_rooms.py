"""Presence rooms shared by every process on one PostgreSQL database.

The same calls as actors.room.Rooms (the ConnectionActor cannot tell them apart, but
for `enter` returning a future), with the room's truth in the database
(store.presence_tables): a local peer's change is written by the PresenceWriter and
reaches the room's members, here as on every other process, only when the
PresenceFeed hears it back, in commit order. So every member, wherever its socket is,
hears one room's changes in the same order: none is shown locally first.

A process mirrors a room while one of its sockets is in it: a RoomActor holding every
process's peers (others' with no sink), read from the database when the first local
socket enters (and again after the feed lost its connection), then moved on by the
feed's entries numbered after what was read. An enter answers once the database took
it: RESOURCE_EXCEEDED if the room already holds PRESENCE_MAX_PEERS over all processes.
A peer's updates faster than PRESENCE_RATE are coalesced here, before the database
(latest wins). Loop thread only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

import pykka

from actorbase.errors import ResourceExceeded
from actors.room import Enter, Leave, PresenceSink, Reset, RoomActor, Update
from store.presence_link import PresenceWriter
from store.presence_tables import Entry, Op, load_room, room_peers
from store.readpool import ReadPool

logger = logging.getLogger(__name__)

RELOAD_DELAY = 0.5
"""Seconds before a room whose read failed is read again."""


@dataclasses.dataclass(slots=True)
class _Local:
    """A peer whose socket is on this process."""

    user_id: str | None
    sink: PresenceSink
    last_sent: float
    pending: Any = None
    has_pending: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclasses.dataclass(slots=True)
class _Mirror:
    ref: pykka.ActorRef[Any]
    members: dict[str, _Local] = dataclasses.field(default_factory=dict)
    seq: int = 0
    """The number of the last change applied."""
    buffer: list[Entry] | None = None
    """Entries heard while the room is being read (None: not being read)."""
    reads: int = 0
    """Reads started: only the latest one's result counts."""


class ClusterRooms:
    """Room name → mirror, for the rooms local sockets are in."""

    def __init__(
        self,
        writer: PresenceWriter,
        reads: ReadPool,
        rate: float,
        fanout_turn: float,
        max_peers: int,
    ) -> None:
        self._writer = writer
        self._reads = reads
        self._min_interval = 1.0 / rate
        self._fanout_turn = fanout_turn
        self._max_peers = max_peers
        self._rooms: dict[str, _Mirror] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._rooms)

    def enter(
        self, room: str, peer_id: str, user_id: str | None, data: Any, sink: PresenceSink
    ) -> asyncio.Future[None]:
        """Add a peer; the future fails with ResourceExceeded if the room is full."""
        mirror = self._rooms.get(room)
        if mirror is None:
            mirror = self._rooms[room] = _Mirror(RoomActor.start(room, 0.0, self._fanout_turn))
            self._read(room, mirror)
        mirror.members[peer_id] = _Local(user_id, sink, 0.0)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        reply = self._writer.submit(Op("enter", room, peer_id, user_id, data))
        asyncio.wrap_future(reply).add_done_callback(
            lambda f: self._entered(f, room, peer_id, mirror, done)
        )
        return done

    def _entered(
        self,
        reply: asyncio.Future[bool],
        room: str,
        peer_id: str,
        mirror: _Mirror,
        done: asyncio.Future[None],
    ) -> None:
        if reply.cancelled() or reply.exception() is not None or reply.result():
            if not done.done():
                done.set_result(None)
            return
        self._forget(room, peer_id, mirror)
        if not done.done():
            done.set_exception(
                ResourceExceeded(f"Presence room {room!r} is full ({self._max_peers} peers)")
            )

    def update(self, room: str, peer_id: str, data: Any) -> None:
        mirror = self._rooms.get(room)
        local = mirror.members.get(peer_id) if mirror is not None else None
        if local is None:
            return
        wait = local.last_sent + self._min_interval - time.monotonic()
        if wait > 0:
            local.pending, local.has_pending = data, True
            if local.timer is None:
                local.timer = asyncio.get_running_loop().call_later(
                    wait, self._flush, room, peer_id, local
                )
            return
        local.last_sent = time.monotonic()
        local.pending, local.has_pending = None, False
        self._writer.submit(Op("update", room, peer_id, data=data))

    def _flush(self, room: str, peer_id: str, local: _Local) -> None:
        local.timer = None
        mirror = self._rooms.get(room)
        if mirror is not None and mirror.members.get(peer_id) is local and local.has_pending:
            self.update(room, peer_id, local.pending)

    def leave(self, room: str, peer_id: str) -> None:
        mirror = self._rooms.get(room)
        if mirror is None or peer_id not in mirror.members:
            return
        self._writer.submit(Op("leave", room, peer_id))
        self._forget(room, peer_id, mirror)

    def _forget(self, room: str, peer_id: str, mirror: _Mirror) -> None:
        """`peer_id`'s socket is no longer in the room; the mirror goes with the last."""
        local = mirror.members.pop(peer_id, None)
        if local is not None and local.timer is not None:
            local.timer.cancel()
        if not mirror.members and self._rooms.get(room) is mirror:
            del self._rooms[room]
            mirror.ref.stop(block=False)

    async def peers(self, room: str) -> list[dict[str, Any]]:
        """The peers of `room` on every process now."""
        return await self._reads.read(lambda txn: room_peers(txn, room))

    def apply(self, entries: list[Entry]) -> None:
        """Entries heard on the feed, in commit order (store.presence_tables)."""
        rooms = self._rooms
        for entry in entries:
            mirror = rooms.get(entry[1])
            if mirror is None:
                continue  # no socket of ours is in that room
            if entry[2] == "resync":
                self._read(entry[1], mirror)
            elif mirror.buffer is not None:
                mirror.buffer.append(entry)
            else:
                self._apply(mirror, entry)

    def reread(self) -> None:
        """The feed was down: read every mirrored room afresh."""
        for room, mirror in self._rooms.items():
            self._read(room, mirror)

    def _apply(self, mirror: _Mirror, entry: Entry) -> None:
        seq, event, peer_id = entry[0], entry[2], entry[3]
        if seq <= mirror.seq:
            return  # already in what was read
        mirror.seq = seq
        if event == "join":
            local = mirror.members.get(peer_id)
            sink = local.sink if local is not None else None
            mirror.ref.tell(Enter(peer_id, entry[4], entry[5], sink))
        elif event == "update":
            mirror.ref.tell(Update(peer_id, entry[4]))
        elif event == "leave":
            mirror.ref.tell(Leave(peer_id))

    def _read(self, room: str, mirror: _Mirror) -> None:
        """Read the room from the database; entries heard meanwhile wait, and those
        numbered after what was read are applied once it is in."""
        if mirror.buffer is None:
            mirror.buffer = []
        mirror.reads += 1
        task = asyncio.ensure_future(self._load(room, mirror, mirror.reads))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self, room: str, mirror: _Mirror, read: int) -> None:
        try:
            seq, peers = await self._reads.read(lambda txn: load_room(txn, room))
        except Exception:
            logger.exception("presence: reading room %r failed; trying again", room)
            await asyncio.sleep(RELOAD_DELAY)
            if self._rooms.get(room) is mirror and mirror.reads == read:
                self._read(room, mirror)
            return
        if self._rooms.get(room) is not mirror or mirror.reads != read:
            return  # the room was left, or a later read is on its way
        buffered, mirror.buffer = mirror.buffer or [], None
        mirror.seq = seq
        members = mirror.members
        mirror.ref.tell(
            Reset(
                tuple((p["id"], p["userId"], p["data"], _sink(members.get(p["id"]))) for p in peers)
            )
        )
        for entry in buffered:
            self._apply(mirror, entry)


def _sink(local: _Local | None) -> PresenceSink | None:
    return local.sink if local is not None else None
