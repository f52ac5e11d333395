"""Compile parsed queries to parameterized SQL for one dialect.

Request values are bound as parameters; entity names and attribute paths are
validated literals (see `store.dialect`). Every statement reads `ab_rows`, except
for the system entity `users`, which `_source` serves from the accounts table as a
derived table with the row columns (id, data, created_at, updated_at, user_id), so
every read, link, cursor and permission filter works on it unchanged.
"""

from __future__ import annotations

from typing import Any

from store.dialect import Dialect, SortPart, entity_literal, json_type_of, system_column
from store.query.ast import And, Cmp, Node, Not, Or, OrderKey, Path
from store.rows import USERS

OrderPart = tuple[str, str, bool]
"""(expression, kind, descending): one ORDER BY term and how its cursor value binds."""

_NUMBER_COLUMNS = ("created_at", "updated_at")
_RANGE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def columns(dialect: Dialect) -> str:
    """The five row columns, in the order `store.base.Txn` decodes them."""
    return f"id, {dialect.json_out}, created_at, updated_at, user_id"


def _source(entity: str, dialect: Dialect) -> str:
    """FROM and the entity filter for `entity`; callers append ``AND …``.

    A `users` row is an account: `{email}` as its data, its own id as `userId` (so
    the owner rule means "yourself"), and `createdAt` as `updatedAt`, since an
    account's email never changes. Role and claims stay private to the auth API.
    """
    if entity == USERS:
        return (
            f"(SELECT id, {dialect.json_object}('email', email) AS data, created_at, "
            "created_at AS updated_at, id AS user_id FROM ab_users) ab_u WHERE 1=1"
        )
    return f"ab_rows WHERE entity = {entity_literal(entity)}"


def where_sql(node: Node, dialect: Dialect, params: list[Any]) -> str:
    """SQL for `node`; bound values are appended to `params` in order.

    The result may be NULL where a row does not match; negation coalesces it to
    FALSE first, so SQL's three-valued logic never disagrees with the matcher.
    """
    if isinstance(node, And):
        if not node.items:
            return "1=1"
        return "(" + " AND ".join(where_sql(n, dialect, params) for n in node.items) + ")"
    if isinstance(node, Or):
        if not node.items:
            return "1=0"
        return "(" + " OR ".join(where_sql(n, dialect, params) for n in node.items) + ")"
    if isinstance(node, Not):
        return f"(NOT coalesce({where_sql(node.item, dialect, params)}, FALSE))"
    column = system_column(node.path)
    if column is not None:
        return _column_sql(column, node, dialect, params)
    return _cmp_sql(node, dialect, params)


def _cmp_sql(node: Cmp, dialect: Dialect, params: list[Any]) -> str:
    if node.op == "eq":
        return dialect.equals(node.path, node.value, params)
    if node.op == "exists":
        present = dialect.present(node.path)
        return present if node.value else f"(NOT {present})"
    if node.op in ("like", "ilike"):
        return dialect.like(node.path, node.value, node.op == "ilike", params)
    return dialect.compare(node.path, node.op, node.value, params)


def _column_sql(column: str, node: Cmp, dialect: Dialect, params: list[Any]) -> str:
    """A condition on a system field: numbers for the timestamps, strings otherwise;
    only `userId` can be null, and all four always exist."""
    kind = "number" if column in _NUMBER_COLUMNS else "string"
    if node.op == "exists":
        return "1=1" if node.value else "1=0"
    if node.op == "eq" and node.value is None:
        return "user_id IS NULL" if column == "user_id" else "1=0"
    if json_type_of(node.value) != kind:
        return "1=0"
    if node.op in ("like", "ilike"):
        return dialect.like_test(column, node.value, node.op == "ilike", params)
    params.append(node.value)
    if node.op == "eq":
        return f"{column} = ?"
    return f"{dialect.text(column) if kind == 'string' else column} {_RANGE[node.op]} ?"


def order_parts(keys: tuple[OrderKey, ...], dialect: Dialect) -> list[OrderPart]:
    """ORDER BY terms for `keys` (type rank, then value within type), always ending
    with the id so the order is total and pages are stable."""
    parts: list[OrderPart] = []
    for key in keys:
        parts.extend((expr, kind, key.descending) for expr, kind in _key_parts(key.path, dialect))
        if system_column(key.path) == "id":
            return parts
    parts.append((dialect.text("id"), "str", False))
    return parts


def _key_parts(path: Path, dialect: Dialect) -> list[SortPart]:
    column = system_column(path)
    if column is None:
        return dialect.sort_parts(path)
    if column in _NUMBER_COLUMNS:
        return [(column, "int")]
    if column == "user_id":
        return [
            ("CASE WHEN user_id IS NULL THEN 0 ELSE 3 END", "int"),
            (dialect.text(column), "str"),
        ]
    return [(dialect.text(column), "str")]


def keyset_sql(
    parts: list[OrderPart], values: list[Any], dialect: Dialect, params: list[Any]
) -> str:
    """Rows strictly after the row whose ORDER BY values are `values`.

    Within one type rank a part is either always NULL or never, so a NULL cursor
    value means "equal when NULL, never after". Parameters are appended in text order.
    """
    clauses = []
    for i, (expr, kind, descending) in enumerate(parts):
        if values[i] is None:
            continue
        terms = [
            f"{e} IS NULL" if v is None else f"{e} = {_bind(v, k, dialect, params)}"
            for (e, k, _), v in zip(parts[:i], values[:i], strict=True)
        ]
        terms.append(
            f"{expr} {'<' if descending else '>'} {_bind(values[i], kind, dialect, params)}"
        )
        clauses.append("(" + " AND ".join(terms) + ")")
    return "(" + " OR ".join(clauses) + ")" if clauses else "1=0"


def _bind(value: Any, kind: str, dialect: Dialect, params: list[Any]) -> str:
    if kind == "num":
        return dialect.num_param(value, params)
    params.append(value)
    return "?"


def select_sql(
    entity: str,
    where: Node,
    parts: list[OrderPart],
    dialect: Dialect,
    params: list[Any],
    *,
    limit: int | None = None,
    offset: int = 0,
    after: list[Any] | None = None,
) -> str:
    """Rows of `entity` matching `where` in `parts` order; the ORDER BY values follow
    the five row columns (a cursor is made from them)."""
    sort = ", ".join(e for e, _, _ in parts)
    sql = f"SELECT {columns(dialect)}, {sort} FROM {_source(entity, dialect)} AND "
    sql += where_sql(where, dialect, params)
    if after is not None:
        sql += " AND " + keyset_sql(parts, after, dialect, params)
    sql += " ORDER BY " + ", ".join(f"{e} {'DESC' if d else 'ASC'}" for e, _, d in parts)
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params.extend([limit, offset])
    return sql


def count_sql(entity: str, where: Node, dialect: Dialect, params: list[Any]) -> str:
    condition = where_sql(where, dialect, params)
    return f"SELECT count(*) FROM {_source(entity, dialect)} AND {condition}"


def link_expr(field: Path, dialect: Dialect) -> tuple[str, str]:
    """(expression, condition): the id a row's `field` holds, if it is a string."""
    column = system_column(field)
    if column is not None:
        return column, f"{column} IS NOT NULL"
    return dialect.link_value(field)


def get_sql(entity: str, dialect: Dialect) -> str:
    """The row of `entity` whose id is the one bound parameter."""
    return f"SELECT {columns(dialect)} FROM {_source(entity, dialect)} AND id = ?"


def get_many_sql(entity: str, ids: list[str], dialect: Dialect, params: list[Any]) -> str:
    """The rows of `entity` with the given ids, in any order."""
    return f"SELECT {columns(dialect)} FROM {_source(entity, dialect)} AND " + dialect.ids_in(
        ids, params
    )


def by_ids_sql(
    entity: str, where: Node, ids: list[str], dialect: Dialect, params: list[Any]
) -> str:
    """The rows of `entity` with the given ids that match `where` (forward links)."""
    params.extend(ids)
    marks = ",".join("?" * len(ids))
    sql = f"SELECT {columns(dialect)} FROM {_source(entity, dialect)} AND id IN ({marks}) AND "
    return sql + where_sql(where, dialect, params)


def per_parent_sql(
    entity: str,
    field: Path,
    parent_ids: list[str],
    where: Node,
    parts: list[OrderPart],
    limit: int,
    offset: int,
    dialect: Dialect,
    params: list[Any],
) -> str:
    """Rows of `entity` whose `field` holds one of `parent_ids`, ordered and limited
    per parent (ROW_NUMBER over a partition per parent id); the parent id is the
    sixth column."""
    expr, cond = link_expr(field, dialect)
    order = ", ".join(f"{e} {'DESC' if d else 'ASC'}" for e, _, d in parts)
    params.extend(parent_ids)
    marks = ",".join("?" * len(parent_ids))
    inner = (
        f"SELECT {columns(dialect)}, {expr} AS ab_link, "
        f"ROW_NUMBER() OVER (PARTITION BY {expr} ORDER BY {order}) AS ab_rn "
        f"FROM {_source(entity, dialect)} AND {cond} AND {expr} IN ({marks}) AND "
        + where_sql(where, dialect, params)
    )
    params.extend([offset, offset + limit])
    return f"SELECT * FROM ({inner}) ab_w WHERE ab_rn > ? AND ab_rn <= ? ORDER BY ab_link, ab_rn"
