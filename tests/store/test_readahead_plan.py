"""The group commit's read-ahead (`Dialect.rows_at`) looks rows up by primary key
whatever the planner knows of ab_rows.

On PostgreSQL the writer's statements are prepared, and a prepared statement keeps the
generic plan made when it was first prepared. `(entity, id) IN (SELECT * FROM unnest …)`
planned on a new, never-analyzed ab_rows became a hash join over a scan of the whole
table, paid by every group for as long as the connection lived: CPU that grew with the
table (measured in docs/benchmarks.md, 2026-12-01). The plan asked for here is the one
such a connection would keep: generic, on an empty table no ANALYZE has seen.
"""

from __future__ import annotations

import itertools
import re

import psycopg
import pytest

from store.base import columns
from tests.storefixture import migrated_store

KEYS = [("todos", "a"), ("todos", "b"), ("notes", "c")]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    with migrated_store(request.param, tmp_path) as store:
        yield store


def _plan(store, sql: str, params: list) -> str:
    if store.dialect.name == "sqlite":
        with store.write() as txn:
            rows = txn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        return "\n".join(str(r[-1]) for r in rows)
    counter = itertools.count(1)
    numbered = re.sub(r"\?", lambda _: f"${next(counter)}", sql)
    with psycopg.connect(store.url) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        # The simple query protocol: PREPARE's own $1, $2 are not parameters of it.
        result = conn.pgconn.exec_(f"PREPARE readahead(text[], text[]) AS {numbered}".encode())
        assert result.status == psycopg.pq.ExecStatus.COMMAND_OK, result.error_message
        cursor = psycopg.ClientCursor(conn)  # EXPLAIN EXECUTE takes no bound parameters
        rows = cursor.execute("EXPLAIN EXECUTE readahead(%s, %s)", params).fetchall()
    return "\n".join(r[0] for r in rows)


def test_the_read_ahead_never_scans_ab_rows(store):
    params: list = []
    sql = store.dialect.rows_at(KEYS, f"entity, {columns(store.dialect)}", params)
    plan = _plan(store, sql, params)
    if store.dialect.name == "sqlite":
        assert "SEARCH ab_rows" in plan, plan
        assert "SCAN ab_rows" not in plan, plan
    else:
        assert "Index Scan using ab_rows_pkey on ab_rows" in plan, plan
        assert "Seq Scan on ab_rows" not in plan, plan


def test_the_read_ahead_finds_exactly_the_rows_at_its_keys(store):
    with store.write() as txn:
        for entity, id in [("todos", "a"), ("notes", "c"), ("todos", "c"), ("notes", "a")]:
            txn.execute(
                "INSERT INTO ab_rows (entity, id, data, created_at, updated_at, user_id, tx) "
                f"VALUES (?, ?, {store.dialect.json_in}, 1, 1, NULL, 1)",
                (entity, id, "{}"),
            )
    params: list = []
    sql = store.dialect.rows_at(KEYS, "entity, id", params)
    with store.write() as txn:
        found = sorted(tuple(r) for r in txn.execute(sql, params).fetchall())
    assert found == [("notes", "c"), ("todos", "a")]
