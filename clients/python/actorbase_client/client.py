"""`Client`: one server, one signed-in user, every feature wired together.

async with Client("http://127.0.0.1:7700") as ab:
    await ab.auth.sign_in("ada@example.com", "correct horse battery")
    async for result in ab.live({"todos": {"$order": {"createdAt": "asc"}}}):
        print(result["todos"])
"""

from __future__ import annotations

import os
from typing import Any, Literal

from .auth import Auth
from .backoff import Backoff
from .connection import Connection
from .data import Collection
from .errors import ActorbaseError
from .functions import Functions
from .http import Http
from .live import LiveQuery
from .mutate import Outbox
from .optimistic import Optimistic, Pending
from .outbox import MemoryOutbox, OutboxStore, SQLiteOutbox
from .presence import Room
from .sse import SseTransport
from .storage import Storage
from .tokens import MemoryTokenStorage, TokenStorage


class Client:
    """Create, then `await start()` (or use `async with`), which loads stored tokens
    and the outbox a previous run left. `transport="sse"` serves live queries over
    Server-Sent Events (no presence). `outbox`: an OutboxStore, or a path for an
    SQLite file; by default mutations wait in memory. `idle_timeout`: seconds without
    a frame from the server (it pings every 30 s by default) before the live socket is
    replaced; set it above the server's WS_PING_INTERVAL."""

    def __init__(
        self,
        url: str,
        *,
        token_storage: TokenStorage | None = None,
        outbox: OutboxStore | str | os.PathLike[str] | None = None,
        transport: Literal["ws", "sse"] = "ws",
        timeout: float = 30,
        reconnect_base: float = 0.25,
        reconnect_max: float = 15.0,
        idle_timeout: float | None = 90,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = Http(self.url, token_storage or MemoryTokenStorage(), timeout)
        self.auth = Auth(self._http)
        self.functions = Functions(self._http)
        self.storage = Storage(self._http)
        self._optimistic = Optimistic()
        self.connection: Connection | SseTransport
        if transport == "ws":
            self.connection = Connection(
                self._http, Backoff(reconnect_base, reconnect_max), idle_timeout
            )
        elif transport == "sse":
            self.connection = SseTransport(self._http)
        else:
            raise ValueError(f"transport: 'ws' or 'sse', got {transport!r}")
        if outbox is None:
            store: OutboxStore = MemoryOutbox()
        elif isinstance(outbox, str | os.PathLike):
            store = SQLiteOutbox(outbox)
        else:
            store = outbox
        self.outbox = Outbox(
            self._http, store, self._optimistic, Backoff(reconnect_base, reconnect_max)
        )
        self._lives: dict[str, LiveQuery] = {}
        self._tracked = _Tracked(self.connection, self._lives)
        self._rooms: dict[str, Room] = {}
        self.auth.on_change(self._on_user)
        self._optimistic.on_change(self._on_pending)
        self.outbox.sent.add(lambda _: self.connection.wake())
        self.connection.opened.add(lambda _: self.outbox.kick())

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        await self._http.load()
        await self.auth.restore()
        await self.outbox.start()

    async def close(self) -> None:
        for live in list(self._lives.values()):
            live.close()
        await self.connection.close()
        await self.outbox.close()
        self._http.close()

    # -- REST ------------------------------------------------------------------------------

    def data(self, entity: str) -> Collection:
        return Collection(self._http, entity)

    async def query(self, query: dict[str, Any]) -> dict[str, Any]:
        """`/api/query` once → {entity: [rows], "tx", "$cursors"?}."""
        response = await self._http.request("POST", "/api/query", json=query)
        return dict(response.body)

    async def mutate(self, ops: list[dict[str, Any]], *, id: str | None = None) -> dict[str, Any]:
        """Apply `ops` (as /api/mutate takes them) → {"tx", "results", "replayed"}.

        `id` is the idempotency key (a UUID is made if absent). The ops show in live
        results at once; the mutation waits in the outbox while the server cannot be
        reached and is sent, in order, when it can: this call returns when the server
        has committed it, and raises ActorbaseError (after rolling it back in the
        live results) if the server refuses it."""
        return await self.outbox.submit(ops, id)

    # -- realtime --------------------------------------------------------------------------

    def live(self, query: dict[str, Any]) -> LiveQuery:
        """A live query, subscribed at once; `close()` it when done."""
        live = LiveQuery(query, self.connection.next_id("q"), self._tracked, self._optimistic)
        self._lives[live.id] = live
        live.subscribe(lambda _: self._retire())
        return live

    def presence(self, room: str) -> Room:
        if not isinstance(self.connection, Connection):
            raise ActorbaseError("INVALID_ARGUMENT", "Presence needs the WebSocket transport", 400)
        if room not in self._rooms:
            self._rooms[room] = Room(self.connection, room)
        return self._rooms[room]

    # -- optimistic bookkeeping ------------------------------------------------------------

    def _on_user(self, user: dict[str, Any] | None) -> None:
        self._optimistic.user_id = user.get("id") if user else None

    def _on_pending(self, entities: set[str]) -> None:
        for live in list(self._lives.values()):
            if live.result is not None and not live.entities.isdisjoint(entities):
                live.refresh()
        self._retire()

    def _retire(self) -> None:
        self._optimistic.retire(self._needed)

    def _needed(self, pending: Pending) -> bool:
        """An acknowledged mutation is still needed by a live result that has not yet
        seen its tx and that it still changes."""
        assert pending.tx is not None
        for live in self._lives.values():
            for entity in pending.entities() & live.entities:
                if (live.tx is None or live.tx < pending.tx) and live.overlay_changes(
                    pending.key, entity
                ):
                    return True
        return False


class _Tracked:
    """The transport as the client's live queries see it: a closed query is also
    forgotten by the client (no more optimistic bookkeeping for it)."""

    def __init__(self, transport: Connection | SseTransport, lives: dict[str, LiveQuery]) -> None:
        self._transport = transport
        self._lives = lives

    def add(self, live: LiveQuery) -> None:
        self._transport.add(live)

    def remove(self, live: LiveQuery) -> None:
        self._lives.pop(live.id, None)
        self._transport.remove(live)
