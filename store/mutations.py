"""Mutation ops: parsed from requests, applied by the transactor inside one transaction.

`parse_ops` rejects malformed batches before they reach the transactor;
`apply_ops` does the checks that need the database (missing rows, duplicates,
permissions) and raises on the first failure, so the caller's savepoint undoes
the whole batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from actorbase.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from store import entropy, permissions
from store.base import Txn, now_ms
from store.principal import Principal
from store.rows import USERS, Row, attributes, check_entity, check_id, merge_patch
from store.schema import Schema

MAX_OPS = 1000
OPS = ("set", "merge", "delete")


@dataclasses.dataclass(frozen=True, slots=True)
class Op:
    """One write. `kind` is set/merge/delete, or `create` (insert only, 409 if present)
    for POST /api/data. `owner` is the userId asked for in `data`, if any."""

    kind: str
    entity: str
    id: str
    data: dict[str, Any] | None = None
    owner: str | None = None
    principal: Principal | None = None
    """Who writes, when not the mutation's caller (a function writing as admin)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What one op did to one row, as published after commit."""

    entity: str
    id: str
    op: str  # insert | update | delete
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """The tx log's form, dumped at once: the row documents are shared, not
        copied (`dataclasses.asdict` deep-copies them value by value: ~0.03 ms of the
        writer's CPU a create, docs/benchmarks.md)."""
        return {
            "entity": self.entity,
            "id": self.id,
            "op": self.op,
            "before": self.before,
            "after": self.after,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """A committed mutation: its tx, the seed's per-op results and the rows after."""

    tx: int
    results: list[dict[str, Any]]
    rows: list[dict[str, Any] | None]
    changes: list[Change]
    replayed: bool = False
    """A retry's answer: the first commit's tx and results (store.idempotency); it
    wrote nothing, so it has no rows or changes."""


def parse_ops(raw: Any) -> list[Op]:
    """The `ops` array of POST /api/mutate."""
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument("ops: must be a non-empty array")
    if len(raw) > MAX_OPS:
        raise InvalidArgument(f"ops: at most {MAX_OPS} operations per batch")
    return [_parse_op(item, f"ops[{i}]") for i, item in enumerate(raw)]


def _parse_op(item: Any, where: str) -> Op:
    if not isinstance(item, dict):
        raise InvalidArgument(f"{where}: must be an object")
    kind = item.get("op")
    if kind not in OPS:
        raise InvalidArgument(f"{where}.op: must be one of set, merge, delete, got {kind!r}")
    entity = check_entity(item.get("entity"), f"{where}.entity")
    id = check_id(item.get("id"), f"{where}.id")
    unknown = set(item) - {"op", "entity", "id", "data"}
    if unknown:
        raise InvalidArgument(f"{where}: unknown keys {sorted(unknown)}")
    if kind == "delete":
        if "data" in item:
            raise InvalidArgument(f"{where}.data: delete takes no data")
        return Op(kind, entity, id)
    return data_op(kind, entity, id, item.get("data"), f"{where}.data")


def data_op(kind: str, entity: str, id: str, body: Any, where: str = "body") -> Op:
    """An op carrying attributes; `userId` in them is kept aside as the requested owner."""
    data = attributes(body, where)
    owner = body.get("userId")
    if owner is not None and not isinstance(owner, str):
        raise InvalidArgument(f"{where}.userId: must be a string")
    return Op(kind, entity, id, data, owner)


def new_id() -> str:
    return entropy.uuid4()


def apply_ops(
    txn: Txn, ops: list[Op], principal: Principal, tx: int, schema: Schema | None = None
) -> Outcome:
    """Apply `ops` in order within the caller's transaction; raise on the first failure.
    Rows written must fit the app's `schema`, if it declares their entity."""
    now = now_ms()
    results: list[dict[str, Any]] = []
    rows: list[dict[str, Any] | None] = []
    changes: list[Change] = []
    for op in ops:
        if op.entity == USERS:
            # Accounts change only through signup and the admin API, which the live
            # queries do not see; the admin token is refused too.
            raise PermissionDenied("users are managed through /api/auth")
        who = op.principal or principal
        before = txn.get(op.entity, op.id)
        after = _after(op, before, who, now)
        action = _action(op, before)
        permissions.check_write(who, action, op.entity, op.id, before, after)
        if after is not None and schema is not None:
            schema.validate(after)
            schema.check_unique(txn, after, before)
        if after is None:
            txn.delete(op.entity, op.id)
            status = "deleted"
        elif before is None:
            txn.insert(after, tx)
            status = "created"
        else:
            txn.update(after, tx)
            status = "updated"
        results.append(
            {"op": "set" if op.kind == "create" else op.kind, "id": op.id, "status": status}
        )
        rows.append(after.to_wire() if after else None)
        changes.append(
            Change(
                op.entity,
                op.id,
                "delete" if after is None else "insert" if before is None else "update",
                before.to_wire() if before else None,
                after.to_wire() if after else None,
            )
        )
    txn.log(tx, [c.to_dict() for c in changes])
    return Outcome(tx, results, rows, changes)


def _action(op: Op, before: Row | None) -> str:
    if op.kind == "delete":
        return "delete"
    return "update" if before is not None else "create"


def _after(op: Op, before: Row | None, principal: Principal, now: int) -> Row | None:
    if op.kind == "delete":
        if before is None:
            raise NotFound(f"{op.entity}/{op.id} not found")
        return None
    if op.kind == "merge" and before is None:
        raise NotFound(f"{op.entity}/{op.id} not found")
    if op.kind == "create" and before is not None:
        raise Conflict(f"{op.entity}/{op.id} already exists")
    owner = _owner(op, before, principal)
    assert op.data is not None
    if op.kind == "merge" and before is not None:
        data = merge_patch(before.data, op.data)
    else:
        data = merge_patch({}, op.data)
    created = before.created_at if before else now
    return Row(op.entity, op.id, data, created, now, owner)


def _owner(op: Op, before: Row | None, principal: Principal) -> str | None:
    """The userId after the op: kept from the stored row, else the creator; only the
    admin may name another owner."""
    current = before.user_id if before else principal.user_id
    if op.owner is None or op.owner == current:
        return current
    if principal.is_admin:
        return op.owner
    raise PermissionDenied(f"userId of {op.entity}/{op.id} is set by the server")
