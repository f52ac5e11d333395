"""Idempotency keys inside one group commit (issue 16), against real SQLite and
PostgreSQL stores: a key twice in one group, a key with other ops, and a keyed
mutation the database refuses (on PostgreSQL that replays the pipelined group without
a pipeline): each key is recorded with its commit or not at all."""

from __future__ import annotations

import pytest

from actorbase.errors import Conflict, InvalidArgument
from actors.transactor import AddListener, ChangeSet, Transactor, submit
from store import idempotency
from store.mutations import Op
from store.principal import ADMIN
from tests.actors.test_pgwrite_group import writes_held
from tests.storefixture import migrated_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    with migrated_store(request.param, tmp_path) as store:
        yield store


def _keyed(value: str, ops: list[Op]) -> tuple[list[Op], idempotency.Key]:
    return ops, idempotency.key_for(value, ADMIN, ops, "key")


def _outcome(future):
    try:
        return future.result(timeout=30)
    except Exception as exc:
        return exc


def _keys(store) -> dict[str, int]:
    rows = store.read(lambda t: t.execute("SELECT idem_key, tx FROM ab_idempotency").fetchall())
    return {k: int(tx) for k, tx in rows}


def test_keys_in_one_group_commit_with_their_mutations(store):
    postgres = store.label == "postgresql"
    published: list[ChangeSet] = []
    ref = Transactor.start(store, True, 256)
    ref.tell(AddListener(published.append))
    a = [Op("set", "things", "a", {"n": 1})]
    nul = [Op("set", "things", "nul", {"s": "a\u0000b"})]  # PostgreSQL's jsonb refuses NUL
    with writes_held(store):
        first = submit(ref, [Op("set", "things", "first", {"n": 0})], ADMIN)  # waits
        batches = [
            _keyed("k-a", a),
            _keyed("k-a", a),  # a retry within the same group
            _keyed("k-a", [Op("set", "things", "a", {"n": 2})]),  # other ops
            _keyed("k-nul", nul),
            _keyed("k-b", [Op("set", "things", "b", {"n": 3})]),
        ]
        futures = [submit(ref, ops, ADMIN, key=key) for ops, key in batches]
    outcomes = [_outcome(f) for f in futures]
    _outcome(first)
    assert ref.proxy().commits.get() <= 2  # all of them in one group
    assert not outcomes[0].replayed and outcomes[1].replayed
    assert (outcomes[1].tx, outcomes[1].results) == (outcomes[0].tx, outcomes[0].results)
    assert isinstance(outcomes[2], Conflict)
    if postgres:
        assert isinstance(outcomes[3], InvalidArgument)
    committed = [o for o in outcomes if not isinstance(o, Exception) and not o.replayed]
    want = {"k-a": outcomes[0].tx, "k-b": outcomes[4].tx}
    if not postgres:
        want["k-nul"] = outcomes[3].tx
    assert _keys(store) == want
    # Replays publish nothing: one change set per commit.
    assert sorted(c.tx for c in published)[1:] == sorted(o.tx for o in committed)
    # A later group finds the keys in the database; a refused mutation's key was not
    # kept, so its retry (now storable) applies.
    again = submit(ref, a, ADMIN, key=batches[0][1]).result(timeout=30)
    assert again.replayed and again.tx == outcomes[0].tx
    ops, key = _keyed("k-nul", [Op("set", "things", "nul", {"s": "ab"})])
    retried = _outcome(submit(ref, ops, ADMIN, key=key))
    ref.stop()
    if postgres:  # the refused mutation left no key: its retry applies
        assert not retried.replayed and _keys(store)["k-nul"] == retried.tx
    else:  # SQLite stored the first: other ops under its key are a conflict
        assert isinstance(retried, Conflict)
