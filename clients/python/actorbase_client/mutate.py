"""`ab.mutate(ops)`: each mutation gets an idempotency key, is applied optimistically,
put in the outbox, and sent by one sender task in outbox order, over HTTP
(`/api/mutate` with `Idempotency-Key`, whose answer carries the results). A mutation
that got no answer (offline, a dropped connection, 5xx, 429) stays at the head and is
resent with the same key until one comes, so it applies exactly once; one the server
refuses (4xx) leaves the outbox, is rolled back and raises to its caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

from .backoff import Backoff
from .errors import ActorbaseError
from .events import Listeners
from .http import Http
from .optimistic import Optimistic
from .outbox import Entry, OutboxStore

logger = logging.getLogger(__name__)

Failure = tuple[Entry, ActorbaseError]


class Outbox:
    """`ab.outbox`: the queue of unacknowledged mutations and its sender."""

    def __init__(
        self, http: Http, store: OutboxStore, optimistic: Optimistic, backoff: Backoff
    ) -> None:
        self._http = http
        self._store = store
        self._optimistic = optimistic
        self._backoff = backoff
        self._entries: list[Entry] = []
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._sender: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self.failures: Listeners[Failure] = Listeners()
        self.sent: Listeners[dict[str, Any]] = Listeners()
        self._changes: Listeners[int] = Listeners()
        http.token_changes.add(lambda _: self.kick())  # signed in (again): send

    @property
    def pending(self) -> int:
        """Mutations not yet acknowledged by the server."""
        return len(self._entries)

    def on_change(self, callback: Callable[[int], object]) -> Callable[[], None]:
        """Called with `pending` whenever it changes (to show "3 changes not saved")."""
        return self._changes.add(callback)

    def on_failure(self, callback: Callable[[Failure], object]) -> Callable[[], None]:
        """Hear of a queued mutation the server refused (also those queued by an earlier
        run, which no caller awaits)."""
        return self.failures.add(callback)

    async def start(self) -> None:
        """Take up what an earlier run left queued, and send it."""
        for entry in await self._store.load():
            self._entries.append(entry)
            self._optimistic.add(entry.key, entry.ops)
        self.kick()

    async def submit(self, ops: list[dict[str, Any]], key: str | None) -> dict[str, Any]:
        if self._closed:
            raise ActorbaseError("INVALID_ARGUMENT", "The client is closed", 400)
        key = key or str(uuid.uuid4())
        waiter = self._waiters.get(key)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[key] = waiter
            if not any(e.key == key for e in self._entries):
                claims = self._http.claims
                entry = Entry(key, ops, claims.user_id if claims else None)
                await self._store.add(entry)  # persisted before anything is sent
                self._entries.append(entry)
                self._changes.emit(self.pending)
                self._optimistic.add(key, ops)
            self.kick()
        return await asyncio.shield(waiter)

    def kick(self) -> None:
        """Start sending (or retry at once if the sender is waiting out a backoff)."""
        if self._closed:
            return
        if self._sender is None or self._sender.done():
            if self._entries:
                self._idle.clear()
                self._sender = asyncio.ensure_future(self._send_all())
        else:
            self._backoff.wake()

    async def flush(self) -> int:
        """Send what is queued now; returns how many are still pending (0: all landed),
        after one pass if the server cannot be reached."""
        self.kick()
        if self._sender is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self._http.timeout)
        return self.pending

    async def close(self) -> None:
        self._closed = True
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.cancel()
        await self._store.close()

    async def _send_all(self) -> None:
        try:
            while self._entries:
                entry = self._entries[0]
                claims = self._http.claims
                if entry.user_id is not None and (
                    claims is None or claims.user_id != entry.user_id
                ):
                    # Its user is not signed in: hold the queue (a sign-in kicks it).
                    return
                try:
                    response = await self._http.request(
                        "POST",
                        "/api/mutate",
                        json={"ops": entry.ops},
                        headers={"Idempotency-Key": entry.key},
                    )
                except ActorbaseError as exc:
                    if exc.transient or exc.code == "UNAUTHENTICATED":
                        # No answer, or not signed in: keep it at the head and retry.
                        self._idle.set()
                        await self._backoff.wait()
                        self._idle.clear()
                        continue
                    await self._done(entry)
                    self._optimistic.rolled_back(entry.key)
                    self._settle(entry.key, exc)
                    self.failures.emit((entry, exc))
                    continue
                self._backoff.reset()
                body = dict(response.body)
                body["replayed"] = response.headers.get("Idempotent-Replayed") == "true"
                await self._done(entry)
                self._optimistic.acknowledged(entry.key, int(body["tx"]))
                self._settle(entry.key, body)
                self.sent.emit(body)
        finally:
            self._idle.set()

    async def _done(self, entry: Entry) -> None:
        await self._store.remove(entry.key)
        self._entries.remove(entry)
        self._changes.emit(self.pending)

    def _settle(self, key: str, outcome: dict[str, Any] | ActorbaseError) -> None:
        waiter = self._waiters.pop(key, None)
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, ActorbaseError):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
