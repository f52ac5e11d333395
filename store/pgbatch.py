"""A pipelined group's writes held back and sent as one PostgreSQL statement.

A statement costs psycopg and the database far more than a row does: each one is a
cursor, a parameter conversion per array, a parse/bind/execute and its results to
read, ~40-45 µs of the writer's CPU (docs/benchmarks.md). A group of creates used to
send its row inserts, tx log entries, schema counters, counter update and NOTIFY as
five statements of up to seven arrays each; `Batch` sends them as one, with one
parameter: a JSON document built from text the writer has already made (each row's
stored JSON), unpacked by `jsonb_to_recordset` in data-modifying CTEs. PostgreSQL
runs each CTE exactly once whether or not the final SELECT reads it, and they touch
different tables, so no part needs to see another's writes.

A group of creates alone (`FRESH_SQL`, store.base.Txn.hold_fresh) is sent without
having taken the tx counter: its tx ids are numbered from 1, and the statement takes
the counter and adds its value to each, so the counter's lock is held only from this
statement to COMMIT. Every part refers to the counter's CTE, so none runs before the
lock is taken: a schema counter or a row updated first could deadlock with another
process's group holding the lock and wanting the same row.

Only PostgreSQL pipelines (store.postgres.write_group), so only it sends this SQL.
"""

from __future__ import annotations

import ujson


def _writes(tx: str, source: str) -> str:
    """The CTEs inserting a batch's rows and tx log entries and moving its schema
    counters; `tx` is a row's tx id from its `x.t`, `source` what they select from."""
    return (
        "r AS (INSERT INTO ab_rows (entity, id, data, created_at, updated_at, user_id, tx) "
        f"SELECT x.e, x.i, x.d, x.c, x.u, x.o, {tx} FROM {source}, "
        "jsonb_to_recordset(v.j->'r') "
        "AS x(e text, i text, d jsonb, c bigint, u bigint, o text, t bigint)), "
        "l AS (INSERT INTO ab_tx (tx, committed_at, changes) "
        f"SELECT {tx}, x.c, x.d FROM {source}, jsonb_to_recordset(v.j->'l') "
        "AS x(t bigint, c bigint, d jsonb)), "
        "s AS (INSERT INTO ab_schema_stats (entity, attribute, type, count) "
        f"SELECT x.e, x.a, x.k, x.n FROM {source}, jsonb_to_recordset(v.j->'s') "
        "AS x(e text, a text, k text, n bigint) "
        "ON CONFLICT (entity, attribute, type) "
        "DO UPDATE SET count = ab_schema_stats.count + excluded.count)"
    )


SQL = (
    "WITH v AS (SELECT ?::jsonb AS j), "
    + _writes("x.t", "v")
    + ", c AS (UPDATE ab_counters SET value = (v.j->>'tx')::bigint FROM v "
    "WHERE name = 'tx' AND v.j->>'tx' IS NOT NULL) "
    "SELECT pg_notify(v.j->>'ch', v.j->>'n') FROM v WHERE v.j->>'n' IS NOT NULL"
)
"""One text for any batch, so it is prepared once. Schema counter keys are distinct
within a batch (store.schema_stats sums them first): ON CONFLICT may not touch a row
twice in one statement."""

FRESH_SQL = (
    "WITH v AS (SELECT ?::jsonb AS j), "
    "c AS (UPDATE ab_counters SET value = value + coalesce((v.j->>'add')::bigint, 0) FROM v "
    "WHERE name = 'tx' RETURNING value - coalesce((v.j->>'add')::bigint, 0) AS base), "
    + _writes("c.base + x.t", "v, c")
    + " SELECT c.base, pg_notify(v.j->>'ch', (c.base + (v.j->>'n')::bigint)::text) FROM v, c"
)
"""A fresh group's writes (`Batch.add`, `tx` ids from 1): returns the counter's value
before them, which the writer adds to the ids it gave out."""


def _text(value: str | None) -> str:
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False)


class Batch:
    """What a pipelined transaction has written but not yet sent."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._rows: list[str] = []
        self._log: list[str] = []
        self._counts: list[str] = []
        self._counter: int | None = None
        self._add: int | None = None
        self._notify: tuple[str, str] | None = None

    def __bool__(self) -> bool:
        return bool(
            self._rows
            or self._log
            or self._counts
            or self._counter is not None
            or self._add is not None
            or self._notify
        )

    def row(
        self,
        entity: str,
        id: str,
        data: str,
        created_at: int,
        updated_at: int,
        user_id: str | None,
        tx: int,
    ) -> None:
        """A row to insert; `data` is its stored JSON text, placed as it is."""
        self._rows.append(
            f'{{"e":{_text(entity)},"i":{_text(id)},"d":{data},"c":{int(created_at)},'
            f'"u":{int(updated_at)},"o":{_text(user_id)},"t":{int(tx)}}}'
        )

    def log(self, tx: int, committed_at: int, changes: str) -> None:
        """A tx log entry; `changes` is its JSON text."""
        self._log.append(f'{{"t":{int(tx)},"c":{int(committed_at)},"d":{changes}}}')

    def counts(self, moves: list[tuple[str, str, str, int]]) -> None:
        """Schema counters to move: (entity, attribute, type, by)."""
        self._counts.extend(
            f'{{"e":{_text(e)},"a":{_text(a)},"k":{_text(k)},"n":{int(n)}}}' for e, a, k, n in moves
        )

    def counter(self, value: int) -> None:
        """The tx counter's new value."""
        self._counter = value

    def add(self, ids: int) -> None:
        """A fresh group's tx ids taken (FRESH_SQL): the counter moves by this many."""
        self._add = ids

    def notify(self, channel: str, payload: str) -> None:
        """A NOTIFY, delivered at COMMIT like any other."""
        self._notify = (channel, payload)

    def take(self) -> str:
        """The statement's parameter, emptying the batch."""
        parts = [
            f'"r":[{",".join(self._rows)}]',
            f'"l":[{",".join(self._log)}]',
            f'"s":[{",".join(self._counts)}]',
        ]
        if self._counter is not None:
            parts.append(f'"tx":{int(self._counter)}')
        if self._add is not None:
            parts.append(f'"add":{int(self._add)}')
        if self._notify is not None:
            parts.append(f'"ch":{_text(self._notify[0])},"n":{_text(self._notify[1])}')
        self._clear()
        return "{" + ",".join(parts) + "}"
