"""Presence rooms over the live socket: enter/update/leave, the room's peers kept
current from `presence-change` snapshots and deltas, and `me` (this socket's
connection id from `auth-ok`). A room is entered again, with its last data, after a
reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from .connection import Connection
from .errors import ActorbaseError
from .events import Listeners

Peer = dict[str, Any]


class Room:
    def __init__(self, connection: Connection, name: str) -> None:
        self.name = name
        self._conn = connection
        self._peers: dict[str, Peer] = {}
        self._data: dict[str, Any] | None = None
        self._entering: dict[str, asyncio.Future[None]] = {}
        self._changes: Listeners[list[Peer]] = Listeners()

    @property
    def me(self) -> str | None:
        """This client's peer id in the room (its socket's connection id)."""
        return self._conn.connection_id if self._data is not None else None

    @property
    def peers(self) -> list[Peer]:
        """Everyone in the room, this client included: `{id, userId, data}`."""
        return list(self._peers.values())

    def on_change(self, callback: Callable[[list[Peer]], object]) -> Callable[[], None]:
        return self._changes.add(callback)

    def __aiter__(self) -> AsyncIterator[list[Peer]]:
        return self._changes.iterate(self.peers if self._data is not None else None)

    async def enter(self, data: dict[str, Any] | None = None) -> None:
        """Join with `data`; returns once the server sent the room's peers."""
        self._data = dict(data or {})
        self._conn.add_room(self)
        await self._send("presence-enter")

    async def update(self, data: dict[str, Any]) -> None:
        """Replace this client's data in the room (the server coalesces fast updates)."""
        if self._data is None:
            raise ActorbaseError("INVALID_ARGUMENT", f"Not in room {self.name}; enter first", 400)
        self._data = dict(data)
        self._conn.send({"type": "presence-update", "room": self.name, "data": self._data})

    async def leave(self) -> None:
        if self._data is None:
            return
        self._data = None
        self._conn.send({"type": "presence-leave", "room": self.name})
        self._conn.remove_room(self)
        self._peers.clear()
        self._changes.emit([])

    async def _send(self, kind: str) -> None:
        waiter = asyncio.get_running_loop().create_future()
        msg_id = self._conn.next_id("p")
        self._entering[msg_id] = waiter
        if self._conn.authed:
            self._conn.send({"type": kind, "id": msg_id, "room": self.name, "data": self._data})
        try:
            await waiter
        finally:
            self._entering.pop(msg_id, None)

    # -- from the connection ---------------------------------------------------------------

    def connected(self, connection_id: str | None) -> None:
        """The socket (re)authenticated: enter with the last data."""
        if self._data is None:
            return
        ids = list(self._entering) or [self._conn.next_id("p")]
        for msg_id in ids:
            self._conn.send(
                {"type": "presence-enter", "id": msg_id, "room": self.name, "data": self._data}
            )

    def disconnected(self) -> None:
        self._peers.clear()

    def handle(self, msg: dict[str, Any]) -> None:
        if "peers" in msg:  # a snapshot: replaces all we knew
            self._peers = {p["id"]: p for p in msg["peers"]}
            for waiter in self._entering.values():
                if not waiter.done():
                    waiter.set_result(None)
        else:
            peer = msg.get("peer") or {}
            if msg.get("event") == "leave":
                self._peers.pop(peer.get("id"), None)
            elif "id" in peer:
                self._peers[peer["id"]] = peer
        self._changes.emit(self.peers)

    def handle_error(self, msg_id: str | None, msg: dict[str, Any]) -> bool:
        waiter = self._entering.get(msg_id or "")
        if waiter is None:
            return False
        self._data = None
        self._conn.remove_room(self)
        if not waiter.done():
            waiter.set_exception(ActorbaseError.from_wire(msg, 400))
        return True
