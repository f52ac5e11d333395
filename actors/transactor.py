"""The transactor: the only writer.

It runs on a thread of its own (database I/O blocks). Each `Mutation` gets a tx id
inside the database transaction, is acknowledged only after COMMIT, and its change
set is published to listeners only after COMMIT, in tx order. When mutations queue
up they are committed together in one database transaction (group commit), each
inside its own savepoint, so one failing mutation, whatever the failure, never drags
the others down. On PostgreSQL the group runs pipelined, in two round trips whatever
its size (one for a group of creates alone: the database numbers its tx ids as its
write statement takes the counter, and `_commit` shifts the outcomes to match); the
store replays it statement by statement when the database refuses
something, so failures stay each mutation's own (`Store.write_group`).

Nothing a client does can raise on this actor's thread: a reply whose caller gave up
(a WebSocket closed, an awaiting task cancelled) is dropped, never set twice. Should
anything escape anyway, pykka stops the actor; `on_failure` fails the group in flight
and tells `on_death`, with which `actors.writer.Writer` starts a successor.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import queue
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pykka

from actorbase.errors import ApiError, Conflict, Internal, InvalidArgument
from store import idempotency, schema_stats
from store.base import Replay, Store, Txn
from store.mutations import Change, Op, Outcome, apply_ops
from store.principal import Principal
from store.schema import Schema
from store.stats import Meter

if TYPE_CHECKING:
    from actorbase.metrics import Metrics
    from actors.writer import Writer
    from store.functions import ReadSet

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeSet:
    """One committed transaction as listeners see it."""

    tx: int
    changes: list[Change]
    seen_at: float = dataclasses.field(default_factory=time.monotonic)
    """When this process learned of the commit: the start of its fan-out latency."""


Listener = Callable[[ChangeSet], None]
"""Called on the transactor's thread after COMMIT; must not block (tell, don't ask)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Mutation:
    ops: list[Op]
    principal: Principal
    reply: concurrent.futures.Future[Outcome]
    queued_at: float = dataclasses.field(default_factory=time.monotonic)
    """When it was submitted: a mutation's latency in /api/admin/stats runs to COMMIT."""
    reads: ReadSet | None = None
    """A server function's reads: commit only if nothing it read changed since."""
    key: idempotency.Key | None = None
    """The client's idempotency key: a retry gets the first commit's outcome."""


@dataclasses.dataclass(frozen=True, slots=True)
class AddListener:
    listener: Listener


class Transactor(pykka.ThreadingActor):
    """Serializes all writes. Talk to it with `submit`; never `ask` it from the IOLoop."""

    def __init__(
        self,
        store: Store,
        group_commit: bool = True,
        group_max: int = 256,
        meter: Meter | None = None,
        schema: Schema | None = None,
        listeners: list[Listener] | None = None,
        on_death: Callable[[Transactor], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__()
        self._store = store
        self._schema = schema
        """The app's schema: every row written must fit it."""
        self._meter = meter
        """Counts committed mutations; written on this actor's thread only."""
        self._metrics = metrics
        """/metrics' writer figures (actorbase.metrics), moved on this thread."""
        self._group_max = group_max if group_commit else 1
        self._listeners: list[Listener] = list(listeners or ())
        self._on_death = on_death
        """Told, on this thread, when the actor fails or stops (actors.writer tells a
        death from its own `stop`)."""
        self._inflight: list[Mutation] = []
        """The group being committed: failed by `on_failure` if the actor dies."""
        self.commits = 0
        """Database transactions committed (fewer than mutations when grouping)."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Mutation):
            group, deferred = self._gather(message)
            if group:
                self._commit(group)
            self._inflight = []
            if deferred is not None:
                self._handle_deferred(deferred)
            return None
        if isinstance(message, AddListener):
            self._listeners.append(message.listener)
            return None
        return super().on_receive(message)

    def _gather(self, first: Mutation) -> tuple[list[Mutation], Any]:
        """Take the mutations already queued behind `first`, up to the group size.

        Stops at the first other message, which is handled right after the commit
        so mailbox order is kept. Mutations whose caller gave up before they ran are
        dropped unapplied.
        """
        # Kept on the actor as it grows: claimed replies are failed if the actor dies.
        group = self._inflight = [first] if _claim(first) else []
        taken = 1
        while taken < self._group_max:
            try:
                envelope = self.actor_inbox.get_nowait()  # type: ignore[attr-defined]
            except queue.Empty:
                break
            if not isinstance(envelope.message, Mutation):
                return group, envelope
            taken += 1
            if _claim(envelope.message):
                group.append(envelope.message)
        return group, None

    def _handle_deferred(self, envelope: Any) -> None:
        try:
            response = self._handle_receive(envelope.message)
        except Exception as exc:
            if envelope.reply_to is None:
                raise
            envelope.reply_to.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
        else:
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)

    def _commit(self, group: list[Mutation]) -> None:
        outcomes: list[Outcome | ApiError] = []
        keyed = [m.key for m in group if m.key is not None]
        recorded = idempotency.Recorded(keyed)

        def run(txn: Txn) -> int | None:
            # The store may run the group twice (store.postgres): the last run counts.
            nonlocal outcomes
            outcomes = [self._apply(txn, mutation, recorded) for mutation in group]
            done = [o for o in outcomes if isinstance(o, Outcome) and not o.replayed]
            if txn.pipelined:
                # One upsert per counter for the group; should the database refuse it,
                # the group replays, each mutation moving its own counters.
                schema_stats.apply(txn, [c for o in done for c in o.changes])
            return done[-1].tx if done else None

        started = time.monotonic()
        try:
            keys = [(op.entity, op.id) for mutation in group for op in mutation.ops]
            shift = self._store.write_group(
                keys, run, recorded.send if keyed else None, fresh=_creates_only(group)
            )
            if shift:  # the database numbered the group's tx ids (Txn.hold_fresh)
                outcomes = [_shifted(o, shift) for o in outcomes]
            self.commits += 1
        except Exception:
            logger.exception("commit of %d mutations failed", len(group))
            outcomes = [Internal() for _ in group]
        committed = time.monotonic()
        for mutation, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Outcome) and not outcome.replayed and self._meter is not None:
                self._meter.record(committed - mutation.queued_at)
            answer(mutation.reply, outcome)
        if self._metrics is not None:
            self._metrics.committed(group, outcomes, started, committed)
        # After the replies: on the loop a writer's answer goes out before the fan-out of
        # its diff (which took 30 ms to 1,000 sockets), as through store.txfeed.
        for outcome in outcomes:
            if isinstance(outcome, Outcome) and not outcome.replayed:
                self._publish(ChangeSet(outcome.tx, outcome.changes))

    def _apply(
        self, txn: Txn, mutation: Mutation, keys: idempotency.Recorded
    ) -> Outcome | ApiError:
        """One mutation in its own savepoint: everything it does (rows, tx log,
        introspection counters, its idempotency key) commits or rolls back together,
        and any failure, expected or not, is its own answer and no other mutation's.
        Pipelined, the counters move once for the group (see `Txn.savepoint`: a
        failure there replays the group). A key already recorded answers instead."""
        try:
            with txn.savepoint():
                if mutation.key is not None:
                    earlier = keys.outcome(mutation.key)
                    if earlier is not None:
                        return earlier
                tx = txn.next_tx()
                if mutation.reads is not None:
                    mutation.reads.check(txn)  # after next_tx: see store.functions
                outcome = apply_ops(txn, mutation.ops, mutation.principal, tx, self._schema)
                if not txn.pipelined:
                    schema_stats.apply(txn, outcome.changes)
                if mutation.key is not None:
                    keys.record(txn, mutation.key, outcome)
        except Replay:
            raise  # the whole group runs again: not this mutation's answer
        except ApiError as exc:
            return exc
        except self._store.integrity_errors as exc:
            return Conflict(f"Conflict: {_first_line(exc)}")
        except self._store.input_errors as exc:
            return InvalidArgument(f"The database cannot store this: {_first_line(exc)}")
        except Exception:
            logger.exception("mutation of %d ops failed", len(mutation.ops))
            return Internal()
        return outcome

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # pykka logged the exception and stops the actor after this returns.
        for mutation in self._inflight:
            answer(mutation.reply, Internal())
        if self._on_death is not None:
            self._on_death(self)

    def on_stop(self) -> None:
        # Called by `stop`, and by pykka when a BaseException escaped; the writer tells
        # the two apart.
        if self._on_death is not None:
            self._on_death(self)

    def _publish(self, changeset: ChangeSet) -> None:
        for listener in self._listeners:
            try:
                listener(changeset)
            except Exception:
                logger.exception("change listener failed for tx %d", changeset.tx)


def submit(
    transactor: Writer | pykka.ActorRef[Transactor],
    ops: list[Op],
    principal: Principal,
    reads: ReadSet | None = None,
    key: idempotency.Key | None = None,
) -> concurrent.futures.Future[Outcome]:
    """Queue a mutation; the future resolves after COMMIT (wrap it with
    `asyncio.wrap_future` on the IOLoop). A stopped transactor fails the future;
    `reads` that went stale fail it with StaleRead; a `key` already committed resolves
    it with that commit's outcome (`replayed`). Cancelling the future before the
    transactor takes the mutation drops it unapplied; after, only the answer is lost."""
    reply: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
    try:
        transactor.tell(Mutation(ops, principal, reply, reads=reads, key=key))
    except pykka.ActorDeadError:
        reply.set_exception(Internal("The server is shutting down"))
    return reply


def _creates_only(group: list[Mutation]) -> bool:
    """Whether the group only creates rows, with nothing else to read or record: its
    tx ids may be numbered when the counter is taken, in its last statement."""
    return all(
        m.reads is None and m.key is None and all(op.kind == "create" for op in m.ops)
        for m in group
    )


def _shifted(outcome: Outcome | ApiError, by: int) -> Outcome | ApiError:
    if isinstance(outcome, Outcome) and not outcome.replayed:
        return dataclasses.replace(outcome, tx=outcome.tx + by)
    return outcome


def _claim(mutation: Mutation) -> bool:
    """Mark the reply running, so its caller can no longer cancel it; False if the
    caller gave up already (or it was settled: nobody is left to answer)."""
    try:
        return mutation.reply.set_running_or_notify_cancel()
    except RuntimeError:
        return False


def answer(reply: concurrent.futures.Future[Outcome], outcome: Outcome | ApiError) -> None:
    """Settle `reply` unless it already is; never raises."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if isinstance(outcome, Outcome):
            reply.set_result(outcome)
        else:
            reply.set_exception(outcome)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
