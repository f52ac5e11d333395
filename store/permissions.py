"""Who may read and write which rows.

The default when an app gives no rules: the admin token may do anything; a
signed-in user reads and writes only rows whose `userId` is theirs. Reads get
this as a condition in the SQL (so totals and limits count only readable rows);
writes are checked by the transactor against the row before and after.
"""

from __future__ import annotations

from actorbase.errors import NotFound, PermissionDenied
from store.principal import Principal
from store.query.ast import TRUE, And, Cmp, Node
from store.rows import Row


def read_filter(principal: Principal, entity: str) -> Node:
    """The condition every read of `entity` by `principal` is ANDed with."""
    if principal.is_admin:
        return TRUE
    return Cmp(("userId",), "eq", principal.user_id)


def restrict(principal: Principal, entity: str, where: Node) -> Node:
    rule = read_filter(principal, entity)
    return where if rule is TRUE else And((rule, where))


def can_read(principal: Principal, row: Row) -> bool:
    return principal.is_admin or (
        principal.user_id is not None and row.user_id == principal.user_id
    )


def check_write(
    principal: Principal, action: str, entity: str, id: str, before: Row | None, after: Row | None
) -> None:
    """Raise if `principal` may not turn `before` into `after`.

    A row the caller cannot read is reported as missing when they try to change or
    delete it (existence is not leaked); replacing it with `set` is refused outright.
    """
    if principal.is_admin:
        return
    if before is not None and not can_read(principal, before):
        if action in ("update", "delete"):
            raise NotFound(f"{entity}/{id} not found")
        raise PermissionDenied(f"You do not have {action} access to {entity}/{id}")
    if after is not None and after.user_id != principal.user_id:
        raise PermissionDenied(f"You do not have {action} access to {entity}/{id}")
