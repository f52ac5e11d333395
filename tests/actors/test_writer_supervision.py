"""The writer never dies for good: abandoned replies, any failure inside a mutation, a
transactor that dies anyway (supervised and restarted), on real SQLite and PostgreSQL
stores."""

from __future__ import annotations

import functools
import secrets
import threading

import pytest

from actorbase.errors import ApiError, Internal
from actors.transactor import ChangeSet, Mutation, Transactor, submit
from actors.writer import MAX_RESTARTS, Writer
from store.mutations import Op
from store.principal import ADMIN
from tests.actors import test_transactor

store = test_transactor.store
"""The fixture: a migrated store on each backend."""


def _set(id: str, **data) -> Op:
    return Op("set", "things", id, data)


def _ids(store) -> set[str]:
    return {r.id for r in store.read(lambda t: t.select("things"))}


def _writer(store, **kw) -> Writer:
    return Writer(functools.partial(Transactor.start, store, True, 256), **kw)


def _kill(writer: Writer) -> None:
    """Make the current transactor die: a message that breaks its type (a reply that is
    no future) raises inside its loop, as an unexpected bug would."""
    writer.tell(Mutation([_set("never")], ADMIN, reply=None))  # type: ignore[arg-type]


def test_abandoned_replies_are_dropped_and_the_writer_lives_on(store):
    ref = Transactor.start(store, True, 256)
    try:
        futures = [submit(ref, [_set(f"r{i}", n=i)], ADMIN) for i in range(300)]
        # Callers that give up (a WebSocket closed, a task cancelled) cancel their reply.
        cancelled = {i for i, f in enumerate(futures) if i % 3 == 0 and f.cancel()}
        for i, f in enumerate(futures):
            if i not in cancelled:
                f.result(timeout=30)
        after = submit(ref, [_set("after")], ADMIN).result(timeout=30)
        assert after.tx > 0 and ref.is_alive()
    finally:
        ref.stop()
    ids = _ids(store)
    assert "after" in ids
    # Cancelled before the transactor took it: dropped unapplied; else applied.
    assert ids == {"after"} | {f"r{i}" for i in range(300) if i not in cancelled}


def test_any_failure_inside_a_mutation_fails_it_alone(store):
    deep: dict = {}
    inner = deep
    for _ in range(5000):  # past Python's recursion limit, if anything recursed on it
        inner["a"] = {}
        inner = inner["a"]
    ref = Transactor.start(store, True, 256)
    try:
        futures = []
        for i in range(60):
            if i % 20 == 7:
                # Ops built here skip the input checks of store.mutations on purpose.
                ops = [_set(f"bad{i}", n=i), Op("set", "things", f"deep{i}", deep)]
            elif i % 20 == 13:
                # On PostgreSQL the name overflows ab_schema_stats' btree key (if it
                # does not compress); SQLite takes it.
                ops = [_set(f"bad{i}", n=i), _set(f"long{i}", **{secrets.token_hex(1500): 1})]
            else:
                ops = [_set(f"ok{i}", n=i)]
            futures.append(submit(ref, ops, ADMIN))
        failed = []
        for i, f in enumerate(futures):
            try:
                f.result(timeout=30)
            except ApiError:
                failed.append(i)
    finally:
        ref.stop()
    poisoned = (7, 13) if store.label == "postgresql" else (7,)
    bad = [i for i in range(60) if i % 20 in poisoned]
    assert failed == bad
    ids = _ids(store)
    assert {i for i in ids if not i.startswith("long")} == {
        f"ok{i}" for i in range(60) if i % 20 not in (7, 13)
    } | {f"bad{i}" for i in range(60) if i % 20 == 13 and i not in bad}
    counted = store.read(
        lambda t: t.execute(
            "SELECT count FROM ab_schema_stats WHERE entity = 'things' AND attribute = 'id'"
        ).fetchone()
    )
    assert counted[0] == len(ids)  # introspection counts rolled back with the rows


def test_a_dead_transactor_is_replaced_and_queued_writes_go_on(store):
    heard: list[ChangeSet] = []
    writer = _writer(store)
    writer.add_listener(heard.append)
    try:
        first = submit(writer, [_set("before")], ADMIN).result(timeout=30)
        _kill(writer)
        # Queued behind the failing message: handed to the successor, in order.
        queued = [submit(writer, [_set(f"q{i}")], ADMIN) for i in range(20)]
        txs = [f.result(timeout=30).tx for f in queued]
        assert txs == sorted(txs) and txs[0] > first.tx
        later = submit(writer, [_set("later")], ADMIN).result(timeout=30)
        assert writer.restarts == 1 and writer.alive and writer.failure is None
    finally:
        writer.stop(10)
    assert _ids(store) == {"before", "later"} | {f"q{i}" for i in range(20)}
    # The listener added before the death hears the successor's commits too.
    assert [c.tx for c in heard] == [first.tx, *txs, later.tx]


def test_a_writer_that_keeps_dying_is_given_up(store):
    reasons: list[str] = []
    gave_up = threading.Event()

    def give_up(reason: str) -> None:
        reasons.append(reason)
        gave_up.set()

    writer = _writer(store, on_give_up=give_up)
    try:
        for _ in range(MAX_RESTARTS + 1):
            _kill(writer)
            submit(writer, [_set("probe")], ADMIN).exception(timeout=30)
        assert gave_up.wait(30)
        assert not writer.alive and writer.failure and reasons == [writer.failure]
        with pytest.raises(Internal):
            submit(writer, [_set("refused")], ADMIN).result(timeout=30)
    finally:
        writer.stop(10)


def test_stop_finishes_queued_writes_then_refuses(store):
    writer = _writer(store)
    futures = [submit(writer, [_set(f"s{i}")], ADMIN) for i in range(50)]
    writer.stop(30)
    assert all(f.result(timeout=0).tx for f in futures)
    assert not writer.alive
    with pytest.raises(Internal, match="shutting down"):
        submit(writer, [_set("late")], ADMIN).result(timeout=0)
