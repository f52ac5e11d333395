"""SubscriptionActor: one live query computed once for everyone who asked it.

Subscriptions with the same normalized query and the same permission context share
one actor (the dispatcher keys them), so each committed tx is diffed once and each
diff encoded once; members differ only by their subscription id, spliced in by the
connection (the bytes for one id and one transport are made once, then shared).
Everything runs on the IOLoop (a LoopActor); reads go to the read pool. Frames are
handed to each member's `Sink` by a direct call, not a message: the sink is the
connection's outgoing path on the same loop thread, so the order of those calls is
the order on the wire (q-init, then diffs in tx order).

Ordering: change sets arrive in tx order. Before the first read has answered, and
while a re-read is in flight, they are buffered; when the read answers with its
snapshot tx S, buffered sets with tx <= S are dropped (the snapshot has them) and the
rest applied in order, so no diff is lost or repeated between q-init and the first
diff. Flat queries are diffed in Python (store.query.live); queries with links,
`$offset` or `$after`, and flat windows that must be refilled, are re-read and the two
results diffed; such a diff carries the re-read's tx (it may cover several commits).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

import ujson

from actorbase.errors import ApiError, Internal, QueryTooComplex
from actors.fanout import FanOut
from actors.runtime import LoopActor
from actors.transactor import ChangeSet
from store import permissions, txlog
from store.base import Txn
from store.mutations import Change
from store.principal import Principal
from store.query.ast import EntityQuery, Node, Query
from store.query.execute import run
from store.query.live import Diff, Window, diff, is_flat, project, sort_rows
from store.query.match import matches
from store.readpool import ReadPool

logger = logging.getLogger(__name__)

RESUME_MAX_TX = 10_000
"""Largest gap a resume replays from ab_tx; beyond it the client gets a fresh q-init."""

RESUME_PAGE = 500
"""ab_tx rows a resume reads at a time; of them it keeps only the first `before` of
each row of the query's entities, so a long gap never sits in memory whole."""


def _dumps(value: Any) -> str:
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """A server message for one subscription, encoded once for all its members.

    `rest` is the JSON object after its leading fields: a connection writes
    ``{"type":KIND,"id":ID,`` + rest on a WebSocket, or ``data: {"id":ID,`` + rest on
    SSE. `diff` is kept so a slow connection can coalesce pending diffs. `wire` caches
    the bytes sent, per (transport, subscription id), so members that share both share
    one encoding (loop thread only).
    """

    kind: str  # q-init | q-diff | error
    rest: str
    tx: int | None
    diff: Diff | None = None
    multi: bool = False
    error: ApiError | None = None
    """An error frame's error: a stream that has sent nothing yet answers with it."""
    wire: dict[tuple[type, str], bytes] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )


def diff_frame(d: Diff, tx: int, multi: bool) -> Frame:
    """A q-diff; a query on several entities names the entity in each diff."""
    body = {"entity": d.entity, **d.body()} if multi else d.body()
    return Frame("q-diff", _dumps({**body, "tx": tx})[1:], tx, d, multi)


def error_frame(exc: ApiError) -> Frame:
    return Frame("error", _dumps(exc.to_wire())[1:], None, error=exc)


class Sink(Protocol):
    """A connection's outgoing path (actors.connection.Outbox); loop thread only."""

    def deliver(self, member: Member, frame: Frame) -> None:
        """Send `frame` for `member`, or drop it if the member is no longer current.

        Never blocks and never calls back into the caller: a slow socket holds the
        frame back (coalescing diffs) instead of holding up the computation."""


@dataclasses.dataclass(eq=False, slots=True)
class Member:
    """One client subscription: its connection's sink and its id (JSON pre-encoded).
    `query` and `normalized` are what it asked, kept so a re-`auth` can re-check it
    and move it to the computation of the new permission context."""

    sink: Sink
    sub_id: str
    id_json: str
    query: Query | None = None
    normalized: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Join:
    """Add a member. `seen_tx`: the last tx the dispatcher had routed when it joined,
    so a q-init from memory reports the tx its data reflects. `resume_from`: the
    client already holds the result as of that tx (SSE Last-Event-ID)."""

    member: Member
    seen_tx: int
    resume_from: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Leave:
    member: Member


@dataclasses.dataclass(frozen=True, slots=True)
class Changes:
    changeset: ChangeSet


@dataclasses.dataclass(frozen=True, slots=True)
class Resync:
    """Commits up to `tx` were lost on their way here (the commit feed lagged past the
    tx log's retention): read afresh, and send members the difference."""

    tx: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Read:
    """A read's answer, told back to the actor: `result` of `run`, or the error."""

    result: dict[str, Any] | None
    error: BaseException | None = None
    replay: list[Diff] | None = None


class SubscriptionActor(LoopActor):
    """One live query under one permission context, and the members who asked it."""

    def __init__(
        self,
        query: Query,
        principal: Principal,
        reads: ReadPool,
        fanout_turn: float,
        resume_from: int | None = None,
        max_bytes: int | None = None,
        on_sent: Callable[[float], None] | None = None,
    ) -> None:
        """`on_sent(seen_at)`: a diff computed from a change set reached every member."""
        super().__init__()
        self._on_sent = on_sent
        self._query = query
        self._max_bytes = max_bytes
        self._principal = principal
        self._reads = reads
        self._flat = all(is_flat(eq) for eq in query.entities)
        self._multi = len(query.entities) > 1
        self._wheres: dict[str, Node] = {
            eq.entity: permissions.restrict(principal, eq.entity, eq.where) for eq in query.entities
        }
        self._strips = {
            eq.entity: permissions.stripper(principal, eq.entity) for eq in query.entities
        }
        self.entities = query_entities(query)
        self._windows: dict[str, Window] = {}
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._tx = 0
        self._loaded = False
        self._reading = False
        self._stale = False
        """A Resync came while a read was in flight (its snapshot may predate the
        lost commits): read again once it answers."""
        self._buffer: list[ChangeSet] = []
        self._members: list[Member] = []
        self._waiting: list[Member] = []
        self._resume_from = resume_from
        self._task: asyncio.Task[None] | None = None
        self._fanout: FanOut[Member] = FanOut(fanout_turn)

    # -- messages (loop thread) ----------------------------------------------------------

    def on_start(self) -> None:
        self._read()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Changes):
            self._on_changes(message.changeset)
        elif isinstance(message, Join):
            self._waiting.append(message.member)
            if self._loaded and not self._reading:
                self._send_init(max(self._tx, message.seen_tx))
        elif isinstance(message, Leave):
            for group in (self._members, self._waiting):
                if message.member in group:
                    group.remove(message.member)
        elif isinstance(message, _Read):
            self._on_read(message)
            if self._stale and not self._reading:
                self._read()
        elif isinstance(message, Resync):
            if self._reading or not self._loaded:
                self._stale = True
            else:
                self._read()  # its answer is diffed against what members hold
        return None

    def on_stop(self) -> None:
        self._fanout.cancel()
        if self._task is not None:
            self._task.cancel()

    # -- reading -------------------------------------------------------------------------

    def _read(self) -> None:
        """Run the query on the read pool; the answer comes back as a `_Read` message."""
        self._reading = True
        self._stale = False  # this read's snapshot is taken after any lost commit
        resume_from, self._resume_from = self._resume_from, None
        self._task = asyncio.ensure_future(self._read_task(resume_from))

    async def _read_task(self, resume_from: int | None) -> None:
        ref = self.actor_ref
        try:
            if resume_from is not None and self._flat:
                result, replay = await self._reads.read(lambda txn: self._resume(txn, resume_from))
                message = _Read(result, replay=replay)
            else:
                message = _Read(await self._reads.read(self._run))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = _Read(None, error=exc)
        if ref.is_alive():
            ref.tell(message)

    def _run(self, txn: Txn, extra: dict[str, int] | None = None) -> dict[str, Any]:
        """On a read-pool thread: the query with full rows for flat windows (projected
        here, since ordering and matching may need fields `$fields` leaves out)."""
        query = self._query
        if self._flat:
            query = Query(
                tuple(
                    dataclasses.replace(
                        eq, fields=None, limit=eq.limit + (extra or {}).get(eq.entity, 0)
                    )
                    for eq in query.entities
                )
            )
        principal = self._principal
        # Flat windows keep full rows (to match and order) and strip them when shown.
        fields = None if self._flat else (lambda e: permissions.stripper(principal, e))
        return run(
            txn,
            query,
            lambda entity: permissions.read_filter(principal, entity),
            fields,
            self._max_bytes,
        )

    def _resume(self, txn: Txn, since: int) -> tuple[dict[str, Any], list[Diff] | None]:
        """On a read-pool thread, in one snapshot: the result now, and the diffs from
        the result as of tx `since`, rebuilt from ab_tx; None if that gap is gone
        (too long, or pruned: store.txlog), and the client gets a fresh q-init."""
        now = txn.last_tx()
        if not 0 <= since <= now or now - since > RESUME_MAX_TX or not txlog.covers(txn, since):
            return self._run(txn), None
        first_before: dict[tuple[str, str], dict[str, Any] | None] = {}
        read, last = 0, since
        while last < now:
            page = txn.execute(
                "SELECT tx, changes FROM ab_tx WHERE tx > ? AND tx <= ? ORDER BY tx LIMIT ?",
                (last, now, RESUME_PAGE),
            ).fetchall()
            if not page:
                break
            for _, changes in page:
                for c in ujson.loads(changes) if isinstance(changes, str) else changes:
                    if c["entity"] in self.entities:
                        first_before.setdefault((c["entity"], c["id"]), c["before"])
            read, last = read + len(page), int(page[-1][0])
        if read != now - since:
            return self._run(txn), None
        touched: dict[str, int] = {}
        for entity, _ in first_before:
            touched[entity] = touched.get(entity, 0) + 1
        # limit + k rows hold every untouched row of the old window (at most k of its
        # rows were touched since), so the old window is rebuilt exactly.
        try:
            result = self._run(txn, touched)
        except QueryTooComplex:  # the k extra rows outgrew QUERY_MAX_BYTES: start afresh
            return self._run(txn), None
        cursors = result.setdefault("$cursors", {})
        replay: list[Diff] = []
        for eq in self._query.entities:
            where, rows = self._wheres[eq.entity], result[eq.entity]
            old_rows = [r for r in rows if (eq.entity, r["id"]) not in first_before] + [
                before
                for (entity, _), before in first_before.items()
                if entity == eq.entity and before is not None and matches(where, before)
            ]
            strip = self._strips[eq.entity]
            old = Window.of(eq, where, sort_rows(eq, old_rows)[: eq.limit], False, strip)
            if len(rows) > eq.limit:
                cursors[eq.entity] = ""
            result[eq.entity] = rows = rows[: eq.limit]
            new = [project(r if strip is None else strip(r), eq.fields) for r in rows]
            replay.append(diff(eq.entity, old.visible(), new))
        return result, replay

    def _on_read(self, message: _Read) -> None:
        self._reading = False
        self._task = None
        if message.result is None:
            if isinstance(message.error, ApiError):  # e.g. the result outgrew QUERY_MAX_BYTES
                frame = error_frame(message.error)
            else:
                logger.error("live query read failed", exc_info=message.error)
                frame = error_frame(Internal())
            self._deliver(self._members + self._waiting, frame)
            self._waiting.clear()
            return
        result = message.result
        tx = int(result["tx"])
        old = self._visible() if self._loaded else None
        if self._flat:
            cursors = result.get("$cursors", {})
            self._windows = {
                eq.entity: Window.of(
                    eq,
                    self._wheres[eq.entity],
                    result[eq.entity],
                    eq.entity in cursors,
                    self._strips[eq.entity],
                )
                for eq in self._query.entities
            }
        else:
            self._rows = {eq.entity: result[eq.entity] for eq in self._query.entities}
        self._tx = tx
        if old is not None:
            new = self._visible()
            self._emit([diff(e, old[e], new[e]) for e in old], tx)
        self._loaded = True
        if message.replay is not None:
            self._send_replay(message.replay, tx)
        elif self._waiting:
            self._send_init(tx)
        buffered, self._buffer = self._buffer, []
        for i, changeset in enumerate(buffered):
            if changeset.tx > self._tx:
                self._on_changes(changeset)
                if self._reading:
                    self._buffer = [cs for cs in buffered[i + 1 :] if cs.tx > tx]
                    return

    # -- changes -------------------------------------------------------------------------

    def _on_changes(self, changeset: ChangeSet) -> None:
        if not self._loaded or self._reading:
            self._buffer.append(changeset)
            return
        if changeset.tx <= self._tx:
            return  # the snapshot already has it
        by_entity: dict[str, list[Change]] = {}
        for change in changeset.changes:
            if change.entity in self.entities:
                by_entity.setdefault(change.entity, []).append(change)
        if not by_entity:
            self._tx = changeset.tx
            return
        if not self._flat:
            self._read()  # committed before it was published: the re-read includes it
            return
        updated: dict[str, Window] = {}
        diffs: list[Diff] = []
        for entity, changes in by_entity.items():
            applied = self._windows[entity].apply(changes)
            if applied is None:
                self._read()  # the window must be refilled from the database
                return
            updated[entity], d = applied
            diffs.append(d)
        self._windows.update(updated)
        self._tx = changeset.tx
        self._emit(diffs, changeset.tx)
        if self._on_sent is not None and any(diffs):
            self._fanout.then(functools.partial(self._on_sent, changeset.seen_at))

    # -- sending -------------------------------------------------------------------------

    def _visible(self) -> dict[str, list[dict[str, Any]]]:
        if self._flat:
            return {e: w.visible() for e, w in self._windows.items()}
        return self._rows

    def _emit(self, diffs: list[Diff], tx: int) -> None:
        for d in diffs:
            if not d:
                continue
            self._deliver(self._members, diff_frame(d, tx, self._multi))

    def _send_init(self, tx: int) -> None:
        frame = Frame("q-init", _dumps({"data": self._visible(), "tx": tx})[1:], tx)
        self._deliver(self._waiting, frame)
        self._members.extend(self._waiting)
        self._waiting.clear()

    def _send_replay(self, diffs: list[Diff], tx: int) -> None:
        """The resumed member gets only what changed since its Last-Event-ID (or
        `since`); when nothing did, one empty q-diff carrying the tx, so the client
        knows it is current (and an EventSource learns the tx as its last event id)."""
        for d in [d for d in diffs if d] or diffs[:1]:
            self._deliver(self._waiting, diff_frame(d, tx, self._multi))
        self._members.extend(self._waiting)
        self._waiting.clear()

    def _deliver(self, members: list[Member], frame: Frame) -> None:
        """Hand `frame` to each of `members` (as they are now), after the frames before
        it: a large fan-out goes out in chunks, between which the loop serves others."""
        self._fanout.send(members, lambda member: member.sink.deliver(member, frame))


def query_entities(query: Query) -> frozenset[str]:
    """Every entity a query reads, links included: the changes that concern it."""
    out: set[str] = set()

    def walk(eq: EntityQuery) -> None:
        out.add(eq.entity)
        for lq in eq.links:
            walk(lq.query)

    for eq in query.entities:
        walk(eq)
    return frozenset(out)


def principal_key(principal: Principal) -> str:
    """Readers who see the same rows: the admin, or one user with one role and claims."""
    if principal.is_admin:
        return "admin"
    return _dumps([principal.user_id, principal.role, principal.claims])
