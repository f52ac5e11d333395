"""Retention: the periodic sweep that keeps storage bounded (README "Retention").

Every SWEEP_INTERVAL, on the IOLoop but with all work on the read pool and the
storage pool: the tx log is pruned to TX_RETENTION (store.txlog), ended sessions and
their refresh tokens are deleted once no check needs them, idempotency keys past
IDEMPOTENCY_WINDOW are forgotten (store.idempotency), and one page of stored blobs is
checked for orphans (store.orphans). Each part works in bounded batches and
every process may run it: on PostgreSQL the log is pruned by one process at a time
(the floor row's lock) and the other deletes are idempotent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from actors.hub import SESSION_OVERLAP_MS
from config.settings import Settings
from store import idempotency, orphans, txlog
from store.accounts import Accounts
from store.base import Store
from store.readpool import ReadPool
from store.storage.base import Blobs

logger = logging.getLogger(__name__)

SESSION_BATCH = 1000
"""Sessions deleted per transaction."""

SESSION_MARGIN_MS = 60_000
"""Kept beyond the last session check that could still look for an ended session."""

BLOB_PAGE = 1000
"""Stored blobs examined per sweep; the next sweep goes on from there, round and round."""


class Retention:
    """One process's share of keeping the database and the bucket from growing."""

    def __init__(
        self, settings: Settings, store: Store, reads: ReadPool, accounts: Accounts, blobs: Blobs
    ) -> None:
        self._retention = settings.tx_retention
        self._store = store
        self._reads = reads
        self._accounts = accounts
        self._blobs = blobs
        self._grace = settings.orphan_file_grace
        self._idempotency_window = settings.idempotency_window
        # The hub reads sessions that ended since its previous check less an overlap;
        # reuse of a refresh token is told from an unknown one while its session lasts.
        checks = int(2 * settings.session_check_interval * 1000)
        self._keep_sessions_ms = max(
            settings.refresh_idle_ttl * 1000, checks + SESSION_OVERLAP_MS + SESSION_MARGIN_MS
        )
        self._blobs_after: str | None = None

    async def sweep(self) -> None:
        """One round; a part that fails is logged and the others still run."""
        now = time.time()
        parts: tuple[tuple[str, Callable[[], Awaitable[object]]], ...] = (
            ("pruning the tx log", lambda: self.prune_log(int(now * 1000))),
            ("pruning sessions", lambda: self.prune_sessions(int(now * 1000))),
            (
                "forgetting idempotency keys",
                lambda: self._reads.call(
                    lambda: idempotency.sweep(self._store, self._idempotency_window)
                ),
            ),
            ("sweeping orphaned files", lambda: self.sweep_orphans(now)),
        )
        for what, part in parts:
            try:
                await part()
            except Exception:
                logger.exception("retention: %s failed", what)

    async def prune_log(self, now: int) -> int:
        """Prune the tx log to TX_RETENTION as of `now` (ms), a batch per transaction;
        returns how many commits went."""
        total = 0
        while True:
            deleted = await self._reads.call(lambda: self._prune_batch(now))
            total += deleted
            if deleted < txlog.BATCH:
                break
        if total:
            await self._reads.call(lambda: self._store.reclaim("ab_tx"))
        return total

    def _prune_batch(self, now: int) -> int:
        with self._store.transaction() as txn:
            return txlog.prune(txn, self._retention, now)

    async def prune_sessions(self, now: int) -> int:
        """Delete the sessions (and refresh tokens) that ended long enough before `now`
        (ms); returns how many sessions went."""
        before = now - self._keep_sessions_ms
        total = 0
        while True:
            deleted = await self._reads.call(
                lambda: self._accounts.prune_sessions(before, SESSION_BATCH)
            )
            total += deleted
            if deleted < SESSION_BATCH:
                return total

    async def sweep_orphans(self, now: float) -> list[str]:
        """Delete the orphans among the next page of blobs written ORPHAN_FILE_GRACE
        before `now` (Unix seconds); returns their keys."""
        page, self._blobs_after = await self._blobs.call(
            self._blobs.scan, self._blobs_after, BLOB_PAGE
        )
        cutoff = now - self._grace
        old = [key for key, written in page if written < cutoff]
        if not old:
            return []
        gone = await self._reads.read(lambda txn: orphans.unreferenced(txn, old))
        for key in gone:
            await self._blobs.call(self._blobs.delete, key)
        if gone:
            logger.info("retention: deleted %d orphaned files", len(gone))
        return gone
