"""ReadPool.get: the gets of one loop turn are read in one statement per entity, and
each caller gets its own row (None for an absent id), on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from store.base import Store
from store.readpool import ReadPool
from store.rowbatch import MAX_IDS
from store.rows import Row
from tests.storefixture import migrated_store


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request, tmp_path_factory) -> Iterator[Store]:
    with migrated_store(request.param, tmp_path_factory.mktemp("rowbatch"), 2) as opened:
        with opened.write() as txn:
            tx = txn.next_tx()
            for n in range(MAX_IDS + 10):
                txn.insert(Row("todos", f"t{n}", {"n": n}, 1000, 1000, "usr_a"), tx)
            txn.insert(Row("lists", "t1", {"name": "l"}, 1000, 1000, "usr_a"), tx)
        yield opened


class _Counted:
    """The real store, counting the one-statement reads the pool sends it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    def read_one(self, fn):
        self.reads += 1
        return self.store.read_one(fn)


async def _gets(store: Store, keys: list[tuple[str, str]]) -> tuple[list[Row | None], int]:
    counted = _Counted(store)
    pool = ReadPool(counted, 2)  # type: ignore[arg-type]
    try:
        rows = await asyncio.gather(*(pool.get(entity, id) for entity, id in keys))
    finally:
        pool.shutdown()
    return list(rows), counted.reads


def test_one_statement_per_entity_each_caller_its_row(store: Store) -> None:
    keys = [("todos", "t1"), ("todos", "t2"), ("todos", "nope"), ("lists", "t1")]
    keys += [("todos", "t1"), ("lists", "t2")]
    rows, reads = asyncio.run(_gets(store, keys))
    assert reads == 2  # todos and lists, one statement each
    assert [None if r is None else (r.entity, r.id, r.data) for r in rows] == [
        ("todos", "t1", {"n": 1}),
        ("todos", "t2", {"n": 2}),
        None,
        ("lists", "t1", {"name": "l"}),
        ("todos", "t1", {"n": 1}),
        None,
    ]
    assert rows[0] == store.read(lambda txn: txn.get("todos", "t1"))


def test_a_large_batch_is_split(store: Store) -> None:
    keys = [("todos", f"t{n}") for n in range(MAX_IDS + 10)]
    rows, reads = asyncio.run(_gets(store, keys))
    assert reads == 2
    assert [r.data["n"] for r in rows if r is not None] == list(range(MAX_IDS + 10))


def test_gets_in_different_turns_are_read_apart(store: Store) -> None:
    async def apart() -> tuple[list[Row | None], int]:
        counted = _Counted(store)
        pool = ReadPool(counted, 2)  # type: ignore[arg-type]
        try:
            first = await pool.get("todos", "t3")
            second = await pool.get("todos", "t4")
        finally:
            pool.shutdown()
        return [first, second], counted.reads

    rows, reads = asyncio.run(apart())
    assert reads == 2
    assert [r.id for r in rows if r is not None] == ["t3", "t4"]


def test_a_failed_read_reaches_every_caller(store: Store) -> None:
    class Failing(_Counted):
        def read_one(self, fn):
            raise RuntimeError("store down")

    async def failing() -> list[BaseException | Row | None]:
        pool = ReadPool(Failing(store), 2)  # type: ignore[arg-type]
        try:
            return await asyncio.gather(
                pool.get("todos", "t1"), pool.get("todos", "t2"), return_exceptions=True
            )
        finally:
            pool.shutdown()

    answers = asyncio.run(failing())
    assert [str(a) for a in answers] == ["store down", "store down"]


def test_a_shut_pool_fails_its_callers_rather_than_hanging(store: Store) -> None:
    async def shut() -> list[BaseException | Row | None]:
        pool = ReadPool(store, 2)
        pool.shutdown()
        return await asyncio.wait_for(
            asyncio.gather(pool.get("todos", "t1"), return_exceptions=True), 10
        )

    [answer] = asyncio.run(shut())
    assert isinstance(answer, RuntimeError)
