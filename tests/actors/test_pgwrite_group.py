"""One group commit of many mutations against real SQLite and PostgreSQL stores: on
PostgreSQL it runs pipelined (store.postgres.write_group), and a mutation the
database refuses, or one that fails after writing, still fails alone and the group
is answered as if each mutation had its own transaction."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import psycopg
import pytest

from actorbase.errors import Conflict, InvalidArgument, NotFound
from actors.transactor import AddListener, ChangeSet, Transactor, submit
from store import schema_stats
from store.mutations import Op
from store.principal import ADMIN
from store.schema import compile_schema, ensure_indexes
from tests.storefixture import migrated_store

SCHEMA = compile_schema({"handles": {"attributes": {"name": {"type": "string", "unique": True}}}})


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    with migrated_store(request.param, tmp_path) as store:
        ensure_indexes(store, SCHEMA)
        yield store


@contextlib.contextmanager
def writes_held(store) -> Iterator[None]:
    """Another connection holds the write lock (the tx counter row on PostgreSQL, the
    database on SQLite): mutations queue up behind the first one, which waits."""
    if store.label == "sqlite":
        conn = sqlite3.connect(store.path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        conn = psycopg.connect(store.url, autocommit=True)
        conn.execute("BEGIN")
        conn.execute("SELECT value FROM ab_counters WHERE name = 'tx' FOR UPDATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _set(entity: str, id: str, **data) -> Op:
    return Op("set", entity, id, data)


def _outcome(future):
    try:
        return future.result(timeout=30)
    except Exception as exc:
        return exc


def test_a_group_with_failures_answers_each_mutation_as_if_alone(store):
    postgres = store.label == "postgresql"
    published: list[ChangeSet] = []
    ref = Transactor.start(store, True, 256, schema=SCHEMA)
    ref.tell(AddListener(published.append))
    with writes_held(store):
        first = submit(ref, [_set("things", "first", n=0)], ADMIN)  # waits for the lock
        batches = [
            [_set("things", "a", n=1)],
            [Op("merge", "things", "a", {"m": 1})],  # sees the create before it
            [_set("things", "nul", s="a\u0000b")],  # PostgreSQL's jsonb refuses NUL
            [Op("merge", "things", "nul", {"m": 1})],  # so this one finds nothing there
            [_set("things", "half", n=2), Op("merge", "things", "missing", {"x": 1})],
            [_set("handles", "h1", name="ann")],
            [_set("handles", "h2", name="ann")],  # taken in this same group
            [_set("handles", "h3", name="bob"), _set("handles", "h4", name="bob")],
            [Op("delete", "things", "a")],
            [_set("things", "b", n=3)],
        ]
        futures = [submit(ref, ops, ADMIN) for ops in batches]
    outcomes = [_outcome(f) for f in [first, *futures]]
    commits = ref.proxy().commits.get()
    ref.stop()
    assert commits <= 2  # all the batches queued behind the lock: they made one group
    failed = {i: type(o) for i, o in enumerate(outcomes) if isinstance(o, Exception)}
    expected = {5: NotFound, 7: Conflict, 8: Conflict}
    if postgres:
        expected |= {3: InvalidArgument, 4: NotFound}
    assert failed == expected
    txs = [o.tx for o in outcomes if not isinstance(o, Exception)]
    assert txs == list(range(1, len(txs) + 1))  # failures take no tx id
    assert [c.tx for c in published] == txs
    assert store.read(lambda t: t.last_tx()) == txs[-1]
    merged = outcomes[2]
    assert merged.changes[0].before["n"] == 1 and merged.rows[0]["m"] == 1

    def rows(t):
        return {(r.entity, r.id): r.data for e in ("things", "handles") for r in t.select(e)}

    stored = store.read(rows)
    want = {("things", "first"): {"n": 0}, ("things", "b"): {"n": 3}}
    want[("handles", "h1")] = {"name": "ann"}
    if not postgres:
        want[("things", "nul")] = {"s": "a\u0000b", "m": 1}
    assert stored == want
    counted = {(e, a, k): n for e, a, k, n in store.read(schema_stats.counts)}
    assert counted[("things", "id", "string")] == len(want) - 1
    assert counted[("handles", "name", "string")] == 1
    logged = store.read(lambda t: t.execute("SELECT tx FROM ab_tx ORDER BY tx").fetchall())
    assert [r[0] for r in logged] == txs


def test_a_group_writing_one_row_many_times_reads_its_own_writes(store):
    """Rows read ahead for the group are kept current by its writes; the schema
    counters, moved once for a pipelined group, end where one-by-one would leave them."""
    ref = Transactor.start(store, True, 256)
    with writes_held(store):
        first = submit(ref, [_set("counters", "c", n=0)], ADMIN)
        futures = [
            submit(ref, [Op("merge", "counters", "c", {f"k{i}": i})], ADMIN) for i in range(50)
        ]
    first.result(timeout=30)
    outcomes = [f.result(timeout=30) for f in futures]
    ref.stop()
    assert outcomes[-1].rows[0] == {**outcomes[-1].rows[0], **{f"k{i}": i for i in range(50)}}
    stored = store.read(lambda t: t.get("counters", "c"))
    assert stored.data == {"n": 0, **{f"k{i}": i for i in range(50)}}
    counted = {(a, k): n for _, a, k, n in store.read(schema_stats.counts)}
    assert counted == {("id", "string"): 1, **{(a, "number"): 1 for a in stored.data}}
