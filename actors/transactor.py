"""The transactor: the only writer.

It runs on a thread of its own (database I/O blocks). Each `Mutation` gets a tx id
inside the database transaction, is acknowledged only after COMMIT, and its change
set is published to listeners only after COMMIT, in tx order. When mutations queue
up they are committed together in one database transaction (group commit), each
inside its own savepoint, so one failing mutation never drags the others down.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka

from actorbase.errors import ApiError, Conflict, Internal
from store import schema_stats
from store.base import Store
from store.mutations import Change, Op, Outcome, apply_ops
from store.principal import Principal
from store.schema import Schema
from store.stats import Meter

if TYPE_CHECKING:
    from store.functions import ReadSet

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeSet:
    """One committed transaction as listeners see it."""

    tx: int
    changes: list[Change]


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
    ) -> None:
        super().__init__()
        self._store = store
        self._schema = schema
        """The app's schema: every row written must fit it."""
        self._meter = meter
        """Counts committed mutations; written on this actor's thread only."""
        self._group_max = group_max if group_commit else 1
        self._listeners: list[Listener] = []
        self.commits = 0
        """Database transactions committed (fewer than mutations when grouping)."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Mutation):
            group, deferred = self._gather(message)
            self._commit(group)
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
        so mailbox order is kept.
        """
        group = [first]
        while len(group) < self._group_max:
            try:
                envelope = self.actor_inbox.get_nowait()  # type: ignore[attr-defined]
            except queue.Empty:
                break
            if isinstance(envelope.message, Mutation):
                group.append(envelope.message)
            else:
                return group, envelope
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
        try:
            with self._store.write() as txn:
                for mutation in group:
                    try:
                        with txn.savepoint():
                            tx = txn.next_tx()
                            if mutation.reads is not None:
                                mutation.reads.check(txn)  # after next_tx: see store.functions
                            outcomes.append(
                                apply_ops(txn, mutation.ops, mutation.principal, tx, self._schema)
                            )
                    except ApiError as exc:
                        outcomes.append(exc)
                    except self._store.integrity_errors as exc:
                        outcomes.append(Conflict(f"Conflict: {_first_line(exc)}"))
                # Introspection counters move once per group, for the mutations that
                # succeeded, in the same transaction as their rows.
                done = [o for o in outcomes if isinstance(o, Outcome)]
                schema_stats.apply(txn, [c for o in done for c in o.changes])
                if done:
                    # Other processes on the same database hear of it at COMMIT.
                    self._store.announce(txn, done[-1].tx)
            self.commits += 1
        except Exception:
            logger.exception("commit of %d mutations failed", len(group))
            outcomes = [Internal() for _ in group]
        committed = time.monotonic()
        for mutation, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Outcome):
                if self._meter is not None:
                    self._meter.record(committed - mutation.queued_at)
                mutation.reply.set_result(outcome)
            else:
                mutation.reply.set_exception(outcome)
        # After the replies: on the loop a writer's answer goes out before the fan-out of
        # its diff (which took 30 ms to 1,000 sockets), as through store.txfeed.
        for outcome in outcomes:
            if isinstance(outcome, Outcome):
                self._publish(ChangeSet(outcome.tx, outcome.changes))

    def _publish(self, changeset: ChangeSet) -> None:
        for listener in self._listeners:
            try:
                listener(changeset)
            except Exception:
                logger.exception("change listener failed for tx %d", changeset.tx)


def submit(
    transactor: pykka.ActorRef[Transactor],
    ops: list[Op],
    principal: Principal,
    reads: ReadSet | None = None,
) -> concurrent.futures.Future[Outcome]:
    """Queue a mutation; the future resolves after COMMIT (wrap it with
    `asyncio.wrap_future` on the IOLoop). A stopped transactor fails the future;
    `reads` that went stale fail it with StaleRead."""
    reply: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
    try:
        transactor.tell(Mutation(ops, principal, reply, reads=reads))
    except pykka.ActorDeadError:
        reply.set_exception(Internal("The server is shutting down"))
    return reply


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
