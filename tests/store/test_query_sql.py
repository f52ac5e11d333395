"""The compiled SQL through the store: expression indexes are created and used,
and the owner-only read rule filters rows, counts and pages on both backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from store import permissions
from store.base import Store
from store.principal import Principal
from store.query.ast import Cmp, OrderKey
from store.query.sql import order_parts, select_sql
from store.rows import Row
from tests.storefixture import migrated_store


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request, tmp_path_factory) -> Iterator[Store]:
    with migrated_store(request.param, tmp_path_factory.mktemp("sql"), 2) as opened:
        with opened.write() as txn:
            tx = txn.next_tx()
            for i in range(300):
                owner = ("usr_a", "usr_b", None)[i % 3]
                txn.insert(
                    Row("todos", f"t{i:03d}", {"priority": i % 7}, 1000 + i, 1000 + i, owner), tx
                )
        yield opened


def test_ensure_index_is_created_once_and_used(store):
    name = store.ensure_index("todos", ("priority",))
    assert store.ensure_index("todos", ("priority",)) == name
    if store.label == "postgresql":
        with store.write() as txn:
            txn.execute("ANALYZE ab_rows")  # planner statistics, as autovacuum would
    where = Cmp(("priority",), "eq", 3)
    parts = order_parts((OrderKey(("createdAt",), True),), store.dialect)

    def plan(txn) -> str:
        params: list = []
        sql = select_sql("todos", where, parts, store.dialect, params, limit=20)
        if store.label == "sqlite":
            rows = txn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            return " ".join(str(r[-1]) for r in rows)
        txn.execute("SET LOCAL enable_seqscan = off")
        return " ".join(r[0] for r in txn.execute("EXPLAIN " + sql, params).fetchall())

    assert name in store.read(plan)
    rows = store.read(lambda txn: txn.select("todos", where))
    assert len(rows) == len([i for i in range(300) if i % 7 == 3])


@pytest.mark.parametrize(("entity", "path"), [("Todos", ("a",)), ("todos", ("a'b",)), ("x", ())])
def test_ensure_index_refuses_unvalidated_names(store, entity, path):
    with pytest.raises(ValueError):
        store.ensure_index(entity, path)


def test_owner_only_rule_is_in_the_sql(store):
    alice = Principal(user_id="usr_a")
    where = permissions.restrict(alice, "todos", Cmp(("priority",), "gte", 5))
    order = (OrderKey(("priority",)), OrderKey(("createdAt",), True))

    def read(txn):
        return txn.select("todos", where, order, 10, 0), txn.count("todos", where)

    rows, total = store.read(read)
    expected = [i for i in range(0, 300, 3) if i % 7 >= 5]
    assert total == len(expected)
    assert all(r.user_id == "usr_a" for r in rows)
    assert [r.id for r in rows] == [
        f"t{i:03d}" for i in sorted(expected, key=lambda i: (i % 7, -i))[:10]
    ]
