"""The transactor against real SQLite and PostgreSQL stores: group commit, tx order,
isolation of failures within a group, publish after commit."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from actorbase.errors import NotFound
from actors.transactor import AddListener, ChangeSet, Transactor, submit
from store.mutations import Op
from store.principal import ADMIN
from tests.storefixture import migrated_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    with migrated_store(request.param, tmp_path) as store:
        yield store


def _set(id: str, **data) -> Op:
    return Op("set", "things", id, data)


def test_group_commit_keeps_each_mutation_its_own_tx(store):
    published: list[ChangeSet] = []
    ref = Transactor.start(store, True, 256)
    ref.tell(AddListener(published.append))
    futures = [submit(ref, [_set(f"r{i}", n=i)], ADMIN) for i in range(200)]
    outcomes = [f.result(timeout=30) for f in futures]
    commits = ref.proxy().commits.get()
    ref.stop()
    txs = [o.tx for o in outcomes]
    assert txs == sorted(txs) and len(set(txs)) == 200
    assert txs == list(range(txs[0], txs[0] + 200))
    assert commits < 200  # queued mutations shared database transactions
    assert [c.tx for c in published] == txs  # published after commit, in tx order
    rows = store.read(lambda t: t.count("things"))
    assert rows == 200


def test_group_commit_off_commits_one_by_one(store):
    ref = Transactor.start(store, False, 256)
    futures = [submit(ref, [_set(f"r{i}")], ADMIN) for i in range(30)]
    for f in futures:
        f.result(timeout=30)
    assert ref.proxy().commits.get() == 30
    ref.stop()


def test_failed_mutation_does_not_drag_its_group_down(store):
    ref = Transactor.start(store, True, 256)
    futures = []
    for i in range(40):
        if i % 10 == 5:
            # A valid op followed by an invalid one: the whole mutation must vanish.
            ops = [_set(f"bad{i}", n=i), Op("merge", "things", "missing", {"x": 1})]
        else:
            ops = [_set(f"ok{i}", n=i)]
        futures.append(submit(ref, ops, ADMIN))
    good, bad = [], []
    for i, f in enumerate(futures):
        try:
            good.append(f.result(timeout=30).tx)
        except NotFound:
            bad.append(i)
    ref.stop()
    assert bad == [5, 15, 25, 35]
    assert good == list(range(good[0], good[0] + 36))  # failures take no tx id
    ids = {r.id for r in store.read(lambda t: t.select("things"))}
    assert ids == {f"ok{i}" for i in range(40) if i % 10 != 5}


def test_concurrent_submitters_get_strictly_increasing_tx(store):
    ref = Transactor.start(store, True, 64)
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        last = 0
        for i in range(25):
            tx = submit(ref, [_set(f"w{w}-{i}")], ADMIN).result(timeout=30).tx
            assert tx > last  # each writer sees its own writes in order
            last = tx
            with lock:
                results.append((w, tx))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(writer, w) for w in range(8)]:
            f.result()
    ref.stop()
    txs = sorted(tx for _, tx in results)
    assert txs == list(range(txs[0], txs[0] + 200))
    assert store.read(lambda t: t.last_tx()) == txs[-1]
