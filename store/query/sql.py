"""Compile parsed `$where` and `$order` to parameterized SQL for one dialect."""

from __future__ import annotations

from typing import Any

from store.dialect import Dialect, json_type_of, system_column
from store.query.ast import And, Cmp, Node, Not, Or, OrderKey


def where_sql(node: Node, dialect: Dialect, params: list[Any]) -> str:
    """SQL for `node`; bound values are appended to `params` in order."""
    if isinstance(node, And):
        if not node.items:
            return "1=1"
        return "(" + " AND ".join(where_sql(n, dialect, params) for n in node.items) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(where_sql(n, dialect, params) for n in node.items) + ")"
    if isinstance(node, Not):
        return f"NOT {where_sql(node.item, dialect, params)}"
    return _cmp_sql(node, dialect, params)


def _cmp_sql(node: Cmp, dialect: Dialect, params: list[Any]) -> str:
    column = system_column(node.path)
    if column is not None:
        kind = json_type_of(node.value)
        expected = "number" if column in ("created_at", "updated_at") else "string"
        if node.value is None and column == "user_id":
            return "user_id IS NULL"
        if kind != expected:
            return "1=0"
        params.append(node.value)
        return f"{column} = ?"
    return dialect.equals(node.path, node.value, params)


def order_sql(keys: tuple[OrderKey, ...], dialect: Dialect, params: list[Any]) -> str:
    """ORDER BY terms, always ending with the id so pages are stable."""
    terms = []
    for key in keys:
        column = system_column(key.path)
        expr = column if column is not None else dialect.value(key.path, params)
        terms.append(f"{expr} {'DESC' if key.descending else 'ASC'}")
    if not any(system_column(k.path) == "id" for k in keys):
        terms.append("id ASC")
    return ", ".join(terms)
