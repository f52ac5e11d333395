"""What a server function sees: its `Context`, `FunctionError`, and the read set
that makes its reads and writes one serializable transaction.

A function runs in a worker process (store.function_worker) inside one read
snapshot of its own connection. `ctx.db` reads with the caller's permissions and
buffers writes as the caller; `ctx.admin` does both as the admin token would. Every
row and query read is recorded in a `ReadSet` with the snapshot's tx; the
transactor commits the buffered writes only if no transaction committed after that
snapshot touched a row read or a row any query read could match
(`ReadSet.check`); otherwise the function is run again on a fresh snapshot
(optimistic concurrency, as Convex does). `get` sees the function's own buffered
writes; `query` sees the snapshot only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ujson

from actorbase.errors import ApiError, Conflict, InvalidArgument
from store import permissions, txlog
from store.base import Txn
from store.mutations import Op, data_op, new_id
from store.principal import Principal
from store.query.ast import And, Cmp, Limits, Node, Not, Or, Query
from store.query.execute import run
from store.query.links import Links
from store.query.match import matches
from store.query.parse import parse_query
from store.rows import SYSTEM_FIELDS, check_entity, check_id, merge_patch

ERROR_CODES = {
    cls.code: cls for cls in ApiError.__subclasses__() if cls.__init__ is ApiError.__init__
}
"""The seed's codes a `FunctionError` may carry (those that need no extra fields)."""


class FunctionError(Exception):
    """Raise from a function to answer with this error, e.g.
    ``FunctionError("NOT_FOUND", "No list list-1")``; any other exception is INTERNAL."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(
                f"FunctionError: unknown code {code!r}; use one of {sorted(ERROR_CODES)}"
            )
        super().__init__(message)
        self.code = code
        self.message = message


class StaleRead(Conflict):
    """A transaction committed after the function's snapshot changed what it read:
    the function must run again (the caller never sees this unless retries run out)."""


# -- the read set ----------------------------------------------------------------------


def node_to_json(node: Node) -> Any:
    if isinstance(node, Cmp):
        return ["c", list(node.path), node.op, node.value]
    if isinstance(node, Not):
        return ["n", node_to_json(node.item)]
    return ["a" if isinstance(node, And) else "o", [node_to_json(n) for n in node.items]]


def node_from_json(raw: Any) -> Node:
    if raw[0] == "c":
        return Cmp(tuple(raw[1]), raw[2], raw[3])
    if raw[0] == "n":
        return Not(node_from_json(raw[1]))
    items = tuple(node_from_json(n) for n in raw[1])
    return And(items) if raw[0] == "a" else Or(items)


@dataclasses.dataclass(slots=True)
class ReadSet:
    """What one run read, as of snapshot `tx`: single rows, and per entity the
    conditions (permission rule included) of the queries it ran."""

    tx: int
    rows: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    queries: list[tuple[str, Node]] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "tx": self.tx,
            "rows": sorted(self.rows),
            "queries": [[e, node_to_json(n)] for e, n in self.queries],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ReadSet:
        return cls(
            int(raw["tx"]),
            {(e, i) for e, i in raw["rows"]},
            [(e, node_from_json(n)) for e, n in raw["queries"]],
        )

    def check(self, txn: Txn) -> None:
        """In the write transaction, after the tx counter is taken (so on PostgreSQL no
        other process can commit in between): raise StaleRead if a commit after the
        snapshot changed a row read or a row a query could have returned."""
        records = txn.execute("SELECT changes FROM ab_tx WHERE tx > ?", (self.tx,)).fetchall()
        if not txlog.covers(txn, self.tx):  # pruned past the snapshot: run it afresh
            raise StaleRead("The tx log no longer covers the function's snapshot")
        for (changes,) in records:
            for c in ujson.loads(changes) if isinstance(changes, str) else changes:
                if self._touches(c):
                    raise StaleRead("A concurrent write changed what the function read")

    def _touches(self, change: dict[str, Any]) -> bool:
        entity = change["entity"]
        if (entity, change["id"]) in self.rows:
            return True
        return any(
            e == entity
            and any(
                r is not None and matches(where, r) for r in (change["before"], change["after"])
            )
            for e, where in self.queries
        )


# -- what a function is given ----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Auth:
    """The caller: `id` None for the admin token."""

    id: str | None
    role: str
    claims: dict[str, Any]
    is_admin: bool


class Db:
    """Reads (one snapshot, `principal`'s permissions) and buffered writes."""

    def __init__(self, run: _Run, principal: Principal) -> None:
        self._run = run
        self._principal = principal

    def get(self, entity: str, id: str) -> dict[str, Any] | None:
        """One row as the caller may see it, or None; the function's own writes count."""
        check_entity(entity)
        check_id(id)
        self._run.reads.rows.add((entity, id))
        row = self._run.txn.get(entity, id)
        if row is not None and not permissions.can_read(self._principal, row):
            return None
        wire = None if row is None else row.to_wire()
        for op in self._run.ops:
            if (op.entity, op.id) == (entity, id):
                wire = _apply(op, wire)
        return None if wire is None else permissions.strip(self._principal, entity, wire)

    def query(self, query: dict[str, Any]) -> dict[str, Any]:
        """A /api/query body → its result (`{entity: rows, tx}`), from the snapshot."""
        parsed: Query = parse_query(query, self._run.links, self._run.limits)
        permissions.check_query(self._principal, parsed)
        principal = self._principal
        self._record(parsed)
        out = run(
            self._run.txn,
            parsed,
            lambda e: permissions.read_filter(principal, e),
            lambda e: permissions.stripper(principal, e),
            self._run.limits.max_bytes,
        )
        out.pop("$cursors", None)
        return out

    def _record(self, parsed: Query) -> None:
        def walk(eq: Any) -> None:
            self._run.reads.queries.append(
                (eq.entity, permissions.restrict(self._principal, eq.entity, eq.where))
            )
            for lq in eq.links:
                walk(lq.query)

        for eq in parsed.entities:
            walk(eq)

    def insert(self, entity: str, data: dict[str, Any], id: str | None = None) -> str:
        """Create a row (CONFLICT at commit if `id` exists); returns its id."""
        id = check_id(id) if id is not None else new_id()
        self._write(data_op("create", check_entity(entity), id, data, "data"))
        return id

    def set(self, entity: str, id: str, data: dict[str, Any]) -> None:
        self._write(data_op("set", check_entity(entity), check_id(id), data, "data"))

    def merge(self, entity: str, id: str, data: dict[str, Any]) -> None:
        self._write(data_op("merge", check_entity(entity), check_id(id), data, "data"))

    def delete(self, entity: str, id: str) -> None:
        self._write(Op("delete", check_entity(entity), check_id(id)))

    def _write(self, op: Op) -> None:
        self._run.ops.append(dataclasses.replace(op, principal=self._principal))


def _apply(op: Op, row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A buffered write applied to a row as the function sees it before commit."""
    if op.kind == "delete":
        return None
    if op.kind == "merge" and row is not None:
        return merge_patch(row, op.data or {})
    system = {k: row[k] for k in SYSTEM_FIELDS if row is not None and k in row}
    return {**merge_patch({}, op.data or {}), **system, "id": op.id}


class _Run:
    """One run's state: its snapshot, reads and buffered writes."""

    def __init__(self, txn: Txn, links: Links, limits: Limits) -> None:
        self.txn = txn
        self.links = links
        self.limits = limits
        self.reads = ReadSet(txn.last_tx())
        self.ops: list[Op] = []


class Context:
    """The first argument of every server function."""

    def __init__(
        self, txn: Txn, links: Links, limits: Limits, principal: Principal, admin: Principal
    ) -> None:
        self._state = _Run(txn, links, limits)
        self.auth = Auth(
            principal.user_id, principal.role, dict(principal.claims), principal.is_admin
        )
        self.db = Db(self._state, principal)
        """Reads and writes as the caller: the app's rules apply."""
        self.admin = Db(self._state, admin)
        """Reads and writes as the admin token: rules do not apply."""

    @property
    def reads(self) -> ReadSet:
        return self._state.reads

    @property
    def ops(self) -> list[Op]:
        return self._state.ops


def op_to_json(op: Op) -> dict[str, Any]:
    """A buffered write for the pipe to the server process."""
    out: dict[str, Any] = {"kind": op.kind, "entity": op.entity, "id": op.id}
    if op.data is not None:
        out["data"] = {**op.data, **({"userId": op.owner} if op.owner is not None else {})}
    out["admin"] = bool(op.principal is not None and op.principal.is_admin)
    return out


def op_from_json(raw: dict[str, Any], caller: Principal, admin: Principal) -> Op:
    """Rebuilt and re-validated in the server process, with the principal it writes as."""
    who = admin if raw.get("admin") else caller
    kind, entity, id = raw["kind"], check_entity(raw["entity"]), check_id(raw["id"])
    if kind == "delete":
        return Op("delete", entity, id, principal=who)
    if kind not in ("create", "set", "merge"):
        raise InvalidArgument(f"unknown write {kind!r}")
    return dataclasses.replace(data_op(kind, entity, id, raw.get("data"), "data"), principal=who)
