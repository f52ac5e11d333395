"""Who may read and write which rows, files and rooms: every channel asks here.

The rules are the app's (`store.rules`, carried by the `Principal` since sign-in),
or the owner-only default: a signed-in user reads and writes only rows whose
`userId` is theirs. The admin token may do anything. Reads get the read rule as a
condition in the SQL (so totals and limits count only readable rows); writes are
checked by the transactor against the row before and after; unreadable fields are
stripped from rows, and a query that names one is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from actorbase.errors import NotFound, PermissionDenied
from store.principal import Principal
from store.query.ast import TRUE, And, EntityQuery, Node, OrderKey, Query
from store.query.match import matches
from store.rows import Row
from store.rules import DEFAULT_RULES, RuleSet, Stripper, auth_of, bind, named_fields


def _rules(principal: Principal) -> RuleSet:
    return principal.rules or DEFAULT_RULES


def _auth(principal: Principal) -> dict[str, Any]:
    return auth_of(principal.user_id, principal.role, principal.claims)


def read_filter(principal: Principal, entity: str) -> Node:
    """The condition every read of `entity` by `principal` is ANDed with."""
    if principal.is_admin:
        return TRUE
    return _rules(principal).row_rule(_auth(principal), entity, "read")


def restrict(principal: Principal, entity: str, where: Node) -> Node:
    rule = read_filter(principal, entity)
    return where if rule == TRUE else And((rule, where))


def can_read(principal: Principal, row: Row) -> bool:
    return principal.is_admin or matches(read_filter(principal, row.entity), row.to_wire())


def stripper(principal: Principal, entity: str) -> Stripper | None:
    """What removes `principal`'s unreadable fields from `entity` rows (None: nothing)."""
    if principal.is_admin:
        return None
    return _rules(principal).stripper(_auth(principal), entity)


def strip(principal: Principal, entity: str, row: dict[str, Any]) -> dict[str, Any]:
    """One wire row as `principal` may see it."""
    fn = stripper(principal, entity)
    return row if fn is None else fn(row)


def check_named(
    principal: Principal,
    entity: str,
    where: Node,
    order: Iterable[OrderKey] = (),
    fields: Iterable[str] | None = None,
) -> None:
    """403 if a query names, in `$where`, `$order` or `$fields`, a field `principal`
    cannot read on every row (DESIGN.md, Permissions). Fields it does not name are
    stripped per row instead."""
    if principal.is_admin:
        return
    rules, auth = _rules(principal), _auth(principal)
    if not rules.entity(entity).fields:
        return
    for name in named_fields(where) | {k.path[0] for k in order} | set(fields or ()):
        if rules.field_rule(auth, entity, name, "read") != TRUE:
            raise PermissionDenied(f"You do not have read access to {entity}.{name}")


def check_query(principal: Principal, query: Query) -> None:
    """`check_named` for every level of a parsed query."""

    def walk(eq: EntityQuery) -> None:
        check_named(principal, eq.entity, eq.where, eq.order, eq.fields)
        for lq in eq.links:
            walk(lq.query)

    for eq in query.entities:
        walk(eq)


def check_write(
    principal: Principal, action: str, entity: str, id: str, before: Row | None, after: Row | None
) -> None:
    """Raise if `principal` may not turn `before` into `after`.

    A row the caller cannot read is reported as missing when they try to change or
    delete it (existence is not leaked). The `update` rule must hold for the stored
    row and for the row after the change, so nobody moves a row out of their reach;
    a field with a `write` rule may change only where that rule holds on both sides.
    """
    if principal.is_admin:
        return
    rules, auth = _rules(principal), _auth(principal)
    old = before.to_wire() if before is not None else None
    new = after.to_wire() if after is not None else None
    if old is not None and not matches(rules.row_rule(auth, entity, "read"), old):
        raise NotFound(f"{entity}/{id} not found")
    rule = rules.row_rule(auth, entity, action)
    if any(row is not None and not matches(rule, row) for row in (old, new)):
        raise PermissionDenied(f"You do not have {action} access to {entity}/{id}")
    for name in rules.entity(entity).fields:
        was = (old or {}).get(name)
        now = (new or {}).get(name)
        if was == now:
            continue
        rule = rules.field_rule(auth, entity, name, "write")
        if any(row is not None and not matches(rule, row) for row in (old, new)):
            raise PermissionDenied(f"You do not have write access to {entity}.{name}")


# -- files and rooms -----------------------------------------------------------------


def file_view(path: str, owner: str | None, content_type: str, size: int) -> dict[str, Any]:
    """A file as storage rules see it."""
    return {"path": path, "userId": owner, "contentType": content_type, "size": size}


def file_rule(principal: Principal, action: str) -> Node:
    """The storage rule for `action` (read, write, delete) bound to `principal`."""
    if principal.is_admin:
        return TRUE
    return bind(_rules(principal).storage[action], _auth(principal))


def can_file(principal: Principal, action: str, view: dict[str, Any]) -> bool:
    return principal.is_admin or matches(file_rule(principal, action), view)


def check_room(principal: Principal, room: str) -> None:
    """403 unless the `$rooms` rule lets `principal` into presence room `room`."""
    if principal.is_admin:
        return
    if not matches(bind(_rules(principal).rooms, _auth(principal)), {"room": room}):
        raise PermissionDenied(f"You do not have access to room {room}")
