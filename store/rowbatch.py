"""Gets by id that arrive together reach the store as one statement."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from store.base import Txn
from store.rows import Row

MAX_IDS = 500
"""Ids per statement: a bound on one statement's size and one read thread's turn."""

Waiters = dict[str, list["asyncio.Future[Row | None]"]]
Run = Callable[[Callable[[Txn], dict[str, Row]]], "asyncio.Future[dict[str, Row]]"]


class RowBatch:
    """Coalesces the gets by id made in one IOLoop turn (DataLoader-style): one
    `Txn.get_many` per entity on the read pool instead of one read each, so 32
    concurrent gets cost one thread hop and one database round trip, not 32.
    Each caller still checks permissions on its own row."""

    def __init__(self, run: Run) -> None:
        self._run = run
        """Runs a one-statement read on the read pool (`Store.read_one`)."""
        self._waiting: dict[str, Waiters] = {}

    def get(self, entity: str, id: str) -> asyncio.Future[Row | None]:
        """The row, or None; resolved after this loop turn's batch is read."""
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._flush)
        future: asyncio.Future[Row | None] = loop.create_future()
        self._waiting.setdefault(entity, {}).setdefault(id, []).append(future)
        return future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for entity, by_id in waiting.items():
            ids = list(by_id)
            for start in range(0, len(ids), MAX_IDS):
                chunk = ids[start : start + MAX_IDS]
                try:
                    read = self._run(lambda txn, e=entity, c=chunk: txn.get_many(e, c))
                except Exception as exc:  # e.g. the pool is shut down: fail, never hang
                    read = asyncio.get_running_loop().create_future()
                    read.set_exception(exc)
                read.add_done_callback(lambda done, w=by_id, c=chunk: _answer(done, w, c))


def _answer(done: asyncio.Future[dict[str, Row]], by_id: Waiters, ids: list[str]) -> None:
    error = done.exception()
    rows = {} if error is not None else done.result()
    for id in ids:
        for future in by_id[id]:
            if future.done():  # its caller went away
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(rows.get(id))
