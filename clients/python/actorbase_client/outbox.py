"""Where mutations wait until the server has acknowledged them: in memory, or in an
SQLite file that survives the process (a write made offline is sent on the next run)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    """The idempotency key: a resend of an entry the server already committed is
    answered with the first commit's outcome, never applied twice."""
    ops: list[dict[str, Any]]
    user_id: str | None = None
    """Who made it: it is sent only with that user's token (another user signed in
    meanwhile waits for them)."""
    created_at: float = field(default_factory=time.time)


class OutboxStore(Protocol):
    """A queue of entries in the order they were added."""

    async def load(self) -> list[Entry]: ...
    async def add(self, entry: Entry) -> None: ...
    async def remove(self, key: str) -> None: ...
    async def close(self) -> None: ...


class MemoryOutbox:
    """Entries for the life of the client (the default)."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    async def load(self) -> list[Entry]:
        return list(self._entries.values())

    async def add(self, entry: Entry) -> None:
        self._entries.setdefault(entry.key, entry)

    async def remove(self, key: str) -> None:
        self._entries.pop(key, None)

    async def close(self) -> None:
        """Nothing to release."""


class SQLiteOutbox:
    """Entries in an SQLite file. The stdlib sqlite3 connection lives on one thread of
    its own (an executor of one worker), so calls are serialized and the event loop
    never waits on the disk; an entry is committed before `add` returns."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="actorbase-outbox")
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS outbox ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " key TEXT NOT NULL UNIQUE, ops TEXT NOT NULL, user_id TEXT,"
                " created_at REAL NOT NULL)"
            )
            conn.commit()
            self._conn = conn
        return self._conn

    async def load(self) -> list[Entry]:
        def read() -> list[Entry]:
            rows = self._db().execute(
                "SELECT key, ops, user_id, created_at FROM outbox ORDER BY seq"
            )
            return [Entry(k, json.loads(o), u, c) for k, o, u, c in rows]

        return list(await self._run(read))

    async def add(self, entry: Entry) -> None:
        def write() -> None:
            with self._db() as db:
                db.execute(
                    "INSERT OR IGNORE INTO outbox (key, ops, user_id, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (entry.key, json.dumps(entry.ops), entry.user_id, entry.created_at),
                )

        await self._run(write)

    async def remove(self, key: str) -> None:
        def delete() -> None:
            with self._db() as db:
                db.execute("DELETE FROM outbox WHERE key = ?", (key,))

        await self._run(delete)

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(shut)
        self._thread.shutdown(wait=False)
