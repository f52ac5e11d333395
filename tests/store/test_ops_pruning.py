"""Retention against real stores on both backends: the tx log's floor and pruning,
function conflict checks across a prune, ended sessions and refresh tokens, and the
orphaned-file sweep on local disk and on S3 (moto's server)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Iterator

import pytest

from actors.retention import Retention
from config.retention import TxRetention
from config.settings import load
from store import files, txlog
from store.accounts import Accounts, Lifetimes, Reused
from store.base import Store, now_ms
from store.files import FileMeta
from store.functions import ReadSet, StaleRead
from store.principal import ADMIN
from store.readpool import ReadPool
from store.storage.base import Blobs
from store.storage.local import LocalBlobs
from store.storage.s3 import S3Blobs
from tests.s3server import CREDENTIALS, S3Server
from tests.storefixture import migrated_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> Iterator[Store]:
    with migrated_store(request.param, tmp_path) as store:
        yield store


def _commit(store: Store, entity: str = "things", id: str = "a", n: int = 0) -> int:
    """One commit in the tx log, written as the transactor writes it."""
    with store.write() as txn:
        tx = txn.next_tx()
        change = {"entity": entity, "id": id, "op": "update", "before": None, "after": {"n": n}}
        txn.log(tx, [change])
        return tx


def _prune(store: Store, retention: TxRetention, now: int | None = None) -> int:
    with store.transaction() as txn:
        return txlog.prune(txn, retention, now_ms() if now is None else now)


def _logged(store: Store) -> list[int]:
    return [r[0] for r in store.read(lambda t: t.execute("SELECT tx FROM ab_tx").fetchall())]


def test_count_retention_keeps_the_newest_and_raises_the_floor(store):
    txs = [_commit(store, n=i) for i in range(12)]
    assert store.read(txlog.floor) == 0
    assert store.read(lambda t: txlog.covers(t, 0))
    assert _prune(store, TxRetention(None, 5)) == 7
    assert sorted(_logged(store)) == txs[-5:]
    assert store.read(txlog.floor) == txs[-6]
    assert store.read(lambda t: txlog.covers(t, txs[-6]))
    assert not store.read(lambda t: txlog.covers(t, txs[-7]))
    assert _prune(store, TxRetention(None, 5)) == 0  # nothing more is past it


def test_age_retention_prunes_only_a_prefix_of_old_commits(store):
    old = [_commit(store, n=i) for i in range(4)]
    now = now_ms()
    assert _prune(store, TxRetention(60_000, None), now) == 0  # all younger than a minute
    assert _prune(store, TxRetention(1_000, None), now + 5_000) == 4
    assert store.read(txlog.floor) == old[-1]
    young = _commit(store)
    assert _prune(store, TxRetention(60_000, None), now_ms()) == 0
    assert _logged(store) == [young]


def test_pruning_goes_in_bounded_batches(store):
    with store.write() as txn:
        for _ in range(txlog.BATCH + 300):
            txn.log(txn.next_tx(), [])
    last = store.read(lambda t: t.last_tx())
    assert _prune(store, TxRetention(None, 1)) == txlog.BATCH
    assert _prune(store, TxRetention(None, 1)) == 299
    assert _logged(store) == [last]
    assert store.read(txlog.floor) == last - 1


def test_one_process_prunes_at_a_time_on_postgresql(store):
    """A second pruner finds the floor locked and skips its round."""
    if store.label != "postgresql":
        pytest.skip("SQLite serves one process")
    txs = [_commit(store, n=i) for i in range(6)]
    with store.transaction() as holder:
        assert txlog.prune(holder, TxRetention(None, 4), now_ms()) == 2
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own pool connection
            assert pool.submit(_prune, store, TxRetention(None, 1)).result(10) == 0
    assert _prune(store, TxRetention(None, 1)) == 3
    assert _logged(store) == [txs[-1]]


def test_a_conflict_check_older_than_the_floor_is_stale(store):
    """A function that read row a at snapshot S: a later commit to a is a conflict;
    once that commit is pruned away it must still not commit (StaleRead: run again)."""
    snapshot = _commit(store, id="other")
    reads = ReadSet(snapshot, rows={("things", "a")})
    _commit(store, id="unrelated")
    with store.write() as txn:
        reads.check(txn)  # nothing it read changed, the log covers it
    _commit(store, id="a", n=100)
    for _ in range(3):
        _commit(store, id="unrelated")
    with store.write() as txn, pytest.raises(StaleRead):
        reads.check(txn)
    _prune(store, TxRetention(None, 2))  # the commit to a is gone from the log
    assert not store.read(lambda t: txlog.covers(t, snapshot))
    with store.write() as txn, pytest.raises(StaleRead) as raised:
        reads.check(txn)
    assert raised.value.code == "CONFLICT"
    fresh = ReadSet(store.read(lambda t: t.last_tx()), rows={("things", "a")})
    with store.write() as txn:
        fresh.check(txn)  # a rerun on a fresh snapshot goes through


# -- sessions and refresh tokens -------------------------------------------------------


def _count(store: Store, sql: str, *params) -> int:
    return int(store.read(lambda t: t.execute(sql, params).fetchone()[0]))


def test_ended_sessions_go_with_their_refresh_tokens(store):
    day = 86_400_000
    accounts = Accounts(store, Lifetimes(idle_ms=7 * day, absolute_ms=30 * day))
    t0 = now_ms()
    user = accounts.create_user("p@example.com", "x", "dev", "1.1.1.1", t0).user
    signed_out = accounts.open_session(user.id, "dev", "1.1.1.1", t0)
    expired = accounts.open_session(user.id, "dev", "1.1.1.1", t0 - 31 * day)
    live = accounts.open_session(user.id, "dev", "1.1.1.1", t0)
    assert signed_out and expired and live
    accounts.revoke_session(user.id, signed_out.session_id, t0)
    # The live session rotates: its spent token must stay, to catch a reuse later.
    rotated = accounts.rotate(live.refresh_token, t0 + 1)
    assert rotated is not None and not isinstance(rotated, Reused)
    tokens = "SELECT count(*) FROM ab_refresh_tokens WHERE session_id = ?"

    # Ended, but not long enough ago: kept.
    assert accounts.prune_sessions(t0 - 2 * day, 1000) == 0
    # Now both ended sessions are a day past: they go, with their tokens.
    assert accounts.prune_sessions(t0 + day, 1000) == 2
    for gone in (signed_out, expired):
        assert _count(store, "SELECT count(*) FROM ab_sessions WHERE id = ?", gone.session_id) == 0
        assert _count(store, tokens, gone.session_id) == 0
    assert _count(store, tokens, live.session_id) == 2
    # The first one of the surviving session, presented again: reuse, session revoked.
    assert accounts.rotate(live.refresh_token, t0 + 2) == Reused(live.session_id)
    assert accounts.session_expiry(live.session_id, user.id, t0 + 3) is None
    # A token of a pruned session is simply unknown.
    assert accounts.rotate(signed_out.refresh_token, t0 + 4) is None


def test_session_pruning_goes_in_batches(store):
    accounts = Accounts(store, Lifetimes(idle_ms=60_000, absolute_ms=60_000))
    t0 = now_ms()
    user = accounts.create_user("b@example.com", "x", "dev", "ip", t0 - 120_000).user
    for _ in range(5):
        accounts.open_session(user.id, "dev", "ip", t0 - 120_000)
    assert accounts.prune_sessions(t0, 4) == 4
    assert accounts.prune_sessions(t0, 4) == 2  # the sign-up's session too
    assert _count(store, "SELECT count(*) FROM ab_sessions") == 0


# -- orphaned files --------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3Server]:
    """moto's standalone S3 server, a separate process spoken to over HTTP."""
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def blobs(request, tmp_path, monkeypatch) -> Iterator[Blobs]:
    if request.param == "local":
        made: Blobs = LocalBlobs(tmp_path / "storage", lambda name, make: "k" * 32)
    else:
        server = request.getfixturevalue("s3")
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)  # boto3 reads them, as in a server
        made = S3Blobs(server.bucket(), "files", server.endpoint)
    yield made
    made.close()


def _put(blobs: Blobs, body: bytes) -> str:
    writer = blobs.writer("text/plain")
    writer.write(body)
    writer.commit()
    return writer.key


def _keys(blobs: Blobs) -> set[str]:
    keys, after = set(), None
    while True:
        page, after = blobs.scan(after, 2)
        keys |= {k for k, _ in page}
        if after is None:
            return keys


def test_orphaned_files_are_swept_after_the_grace_and_the_rest_kept(store, blobs):
    settings = dataclasses.replace(load({}), orphan_file_grace=3600)
    reads = ReadPool(store, 2)
    retention = Retention(settings, store, reads, Accounts(store, Lifetimes(1, 1)), blobs)
    kept = _put(blobs, b"has a row")
    meta = FileMeta("docs/a.txt", None, 9, "text/plain", "0" * 64, kept, now_ms())
    files.transaction(store, lambda txn: files.save(txn, ADMIN, meta))
    orphans = [_put(blobs, b"no row %d" % i) for i in range(5)]
    assert _keys(blobs) == {kept, *orphans}

    async def sweep_all(now: float) -> list[str]:
        """Enough sweeps for a full pass (each looks at one page)."""
        gone: list[str] = []
        for _ in range(2):
            gone += await retention.sweep_orphans(now)
        return gone

    try:
        # Young: within the grace, an orphan may be an upload about to get its row.
        assert asyncio.run(sweep_all(time.time())) == []
        assert _keys(blobs) == {kept, *orphans}
        # Past the grace: the orphans go, the file with a row stays.
        assert sorted(asyncio.run(sweep_all(time.time() + 7200))) == sorted(orphans)
        assert _keys(blobs) == {kept}
    finally:
        reads.shutdown()
