"""Reads go to the store through a bounded thread pool, never on the IOLoop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from store.base import Store, Txn
from store.rowbatch import RowBatch
from store.rows import Row

T = TypeVar("T")


class ReadPool:
    """Runs `Store.read` on at most `threads` threads; callers `await` the result."""

    def __init__(
        self,
        store: Store,
        threads: int,
        pool: concurrent.futures.ThreadPoolExecutor | None = None,
    ) -> None:
        """`pool`: the threads to read on (actorbase.metrics times them), else `threads` new."""
        self._store = store
        self._pool = pool or concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="read"
        )
        self._rows = RowBatch(self._run_one)

    async def read(self, fn: Callable[[Txn], T]) -> T:
        """`fn` runs in one snapshot on a pool thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._store.read, fn)

    def get(self, entity: str, id: str) -> asyncio.Future[Row | None]:
        """One row by id, or None; the gets of one loop turn share one statement
        (store.rowbatch)."""
        return self._rows.get(entity, id)

    def _run_one(self, fn: Callable[[Txn], T]) -> asyncio.Future[T]:
        """`fn` runs exactly one statement (see `Store.read_one`)."""
        return asyncio.get_running_loop().run_in_executor(self._pool, self._store.read_one, fn)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run other blocking store work (ping, account look-ups) on the pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
