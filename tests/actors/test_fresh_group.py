"""Groups of creates on PostgreSQL are written in one round trip, their tx ids numbered
by the database when its one write statement takes the counter (store.base.Txn.hold_fresh,
store.pgbatch.FRESH_SQL). Against real PostgreSQL: the lock is taken only by that
statement; a create that needs a read, or finds its row taken, runs the usual way;
and two writers (two processes' transactors) on one database still give tx ids that
are unique, gapless and in commit order, each row and log entry under its own."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from actorbase.errors import Conflict, NotFound
from actors.transactor import AddListener, ChangeSet, Transactor, submit
from store.factory import open_store
from store.mutations import Op, new_id
from store.principal import ADMIN
from store.schema import compile_schema, ensure_indexes
from store.txfeed import CHANNEL
from tests.actors.test_pgwrite_group import _outcome, writes_held
from tests.storefixture import migrated_store

SCHEMA = compile_schema({"handles": {"attributes": {"name": {"type": "string", "unique": True}}}})


@pytest.fixture
def store(tmp_path):
    with migrated_store("postgres", tmp_path) as store:
        ensure_indexes(store, SCHEMA)
        yield store


def _create(entity: str, id: str | None = None, **data) -> Op:
    return Op("create", entity, id or new_id(), data)


def _waiting_statement(store) -> str:
    """The text of the statement another backend of this database waits on a lock in."""
    with psycopg.connect(store.url, autocommit=True) as conn:
        for _ in range(200):
            row = conn.execute(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            ).fetchone()
            if row is not None:
                return str(row[0])
            time.sleep(0.05)
    raise AssertionError("no statement waited for the tx counter")


def _row_txs(store, entity: str) -> dict[str, int]:
    sql = "SELECT id, tx FROM ab_rows WHERE entity = ?"
    return {r[0]: r[1] for r in store.read(lambda t: t.execute(sql, (entity,)).fetchall())}


def test_creates_take_the_counter_in_their_write_statement_and_get_its_ids(store):
    published: list[ChangeSet] = []
    ref = Transactor.start(store, True, 256, schema=SCHEMA)
    ref.tell(AddListener(published.append))
    submit(ref, [_create("things", "before")], ADMIN).result(timeout=30)  # tx 1
    with writes_held(store):
        first = submit(ref, [_create("things", "t0", n=0)], ADMIN)
        # Nothing was read first: the group's one write statement waits for the lock.
        waiting = _waiting_statement(store)
        assert "jsonb_to_recordset" in waiting and "'add'" in waiting, waiting
        queued = [submit(ref, [_create("things", f"t{i}", n=i)], ADMIN) for i in range(1, 6)]
    outcomes = [_outcome(f) for f in [first, *queued]]
    ref.stop()
    txs = [o.tx for o in outcomes]
    assert txs == list(range(2, 8))  # after tx 1, gapless, in the order submitted
    assert [c.tx for c in published] == [1, *txs]
    assert _row_txs(store, "things") == {"before": 1, **{f"t{i}": 2 + i for i in range(6)}}
    logged = store.read(lambda t: t.execute("SELECT tx, changes FROM ab_tx ORDER BY tx").fetchall())
    assert [tx for tx, _ in logged] == [1, *txs]
    assert [changes[0]["id"] for _, changes in logged] == ["before"] + [f"t{i}" for i in range(6)]
    assert store.read(lambda t: t.last_tx()) == 7


def test_a_create_whose_row_exists_or_that_must_read_runs_the_usual_way(store):
    """A taken id fails the group's insert; a unique attribute needs a read: either
    way the group runs again with the counter held, and each create gets its own
    answer, as one by one."""
    ref = Transactor.start(store, True, 256, schema=SCHEMA)
    submit(ref, [_create("things", "taken", n=0)], ADMIN).result(timeout=30)  # tx 1
    groups = [
        [[_create("things", "a")], [_create("things", "taken")], [_create("things", "b")]],
        [[_create("handles", "h1", name="ann")], [_create("handles", "h2", name="ann")]],
        [[_create("things", "c")], [_create("things", "c")]],  # the same new id twice
        [[_create("things", "d")], [_create("things", "nul", s="a\u0000b")]],  # jsonb refuses
    ]
    answers = []
    for group in groups:
        with writes_held(store):
            first = submit(ref, [_create("things")], ADMIN)
            _waiting_statement(store)
            futures = [submit(ref, ops, ADMIN) for ops in group]
        _outcome(first)
        answers.append([_outcome(f) for f in futures])
    ref.stop()
    kinds = [[type(a).__name__ for a in group] for group in answers]
    assert kinds == [
        ["Outcome", "Conflict", "Outcome"],
        ["Outcome", "Conflict"],
        ["Outcome", "Conflict"],
        ["Outcome", "InvalidArgument"],
    ]
    assert isinstance(answers[1][1], Conflict) and "unique" in answers[1][1].message
    txs = [a.tx for group in answers for a in group if not isinstance(a, Exception)]
    # tx 1, then per group: the held create, then this group's successes
    assert txs == [3, 4, 6, 8, 10]
    assert store.read(lambda t: t.last_tx()) == 10
    assert _row_txs(store, "handles") == {"h1": 6}
    assert {k: v for k, v in _row_txs(store, "things").items() if len(k) == 1} == {
        "a": 3,
        "b": 4,
        "c": 8,
        "d": 10,
    }


def test_two_writers_on_one_database_number_every_commit_once_in_commit_order(tmp_path):
    """Two stores (two processes' writers) create, and merge rows the other created,
    at once: every tx id is given once, with no gap; each row and log entry carries
    its commit's; NOTIFY, in commit order, names them in increasing order."""
    per_writer, rounds = 120, 3
    with migrated_store("postgres", tmp_path) as one:
        two = open_store(one.url, 2)
        listener = psycopg.connect(one.url, autocommit=True)
        listener.execute(f"LISTEN {CHANNEL}")
        refs = [Transactor.start(s, True, 256) for s in (one, two)]
        created: list[list[str]] = [[], []]
        answers: list[list] = [[], []]

        def writer(n: int) -> None:
            for r in range(rounds):
                futures = []
                for i in range(per_writer):
                    id = f"w{n}-{r}-{i}"
                    created[n].append(id)
                    futures.append(submit(refs[n], [_create("rows", id, by=n)], ADMIN))
                    if r and i % 10 == 0:  # a merge of the other writer's last round
                        other = f"w{1 - n}-{r - 1}-{i}"
                        merge = Op("merge", "rows", other, {f"m{n}": r})
                        futures.append(submit(refs[n], [merge], ADMIN))
                answers[n].extend(_outcome(f) for f in futures)

        threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            for ref in refs:
                ref.stop()
            # A merge may come before the other writer's create: NotFound, and no tx id.
            failed = [a for side in answers for a in side if isinstance(a, Exception)]
            assert all(isinstance(a, NotFound) for a in failed), failed
            answers = [[a for a in side if not isinstance(a, Exception)] for side in answers]
            assert sum(map(len, answers)) >= 2 * rounds * per_writer
            txs = sorted(o.tx for side in answers for o in side)
            assert txs == list(range(1, len(txs) + 1))
            assert one.read(lambda t: t.last_tx()) == len(txs)
            sql = "SELECT tx, changes FROM ab_tx ORDER BY tx"
            logged = one.read(lambda t: t.execute(sql).fetchall())
            assert [tx for tx, _ in logged] == txs
            by_tx = {o.tx: o for side in answers for o in side}
            for tx, changes in logged:
                assert [c["id"] for c in changes] == [c.id for c in by_tx[tx].changes]
            last = {}  # each row's tx is its last write's
            for o in sorted(by_tx.values(), key=lambda o: o.tx):
                last[o.changes[0].id] = o.tx
            assert _row_txs(one, "rows") == last
            payloads = [int(n.payload) for n in listener.notifies(timeout=2)]
            assert payloads == sorted(payloads) and len(set(payloads)) == len(payloads)
            assert payloads[-1] == len(txs)
        finally:
            listener.close()
            two.close()
