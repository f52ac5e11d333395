"""Run a parsed `Query` inside one read transaction (one snapshot).

Call `run` from the read pool (`ctx.reads.read(lambda txn: run(txn, q, rule))`): all
entities and all nesting levels are read in the caller's single transaction, and the
result reports the tx that snapshot reflects. The read rule (permissions) is ANDed
into the SQL of every level, so limits and cursors count only readable rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ujson

from store.base import Txn
from store.query import cursor
from store.query.ast import TRUE, And, EntityQuery, LinkQuery, Node, OrderKey, Query
from store.query.match import get_path
from store.query.sql import by_ids_sql, order_parts, per_parent_sql, select_sql

ReadRule = Callable[[str], Node]
"""The condition a reader must meet on rows of an entity (TRUE for the admin)."""

FieldRule = Callable[[str], Callable[[dict[str, Any]], dict[str, Any]] | None]
"""Per entity, what strips the fields a reader may not see from a row (None: nothing)."""

DEFAULT_ORDER = (OrderKey(("createdAt",)),)
"""Without `$order`, rows come oldest first (then by id)."""


def run(txn: Txn, query: Query, rule: ReadRule, fields: FieldRule | None = None) -> dict[str, Any]:
    """``{entity: [rows], "tx": N}``, plus ``"$cursors": {entity: cursor}`` for each
    top-level entity with more rows after this page. `fields` strips unreadable
    fields from the rows returned, at every level (after ordering and matching)."""
    out: dict[str, Any] = {}
    cursors: dict[str, str] = {}
    for eq in query.entities:
        rows, next_cursor = _top(txn, eq, rule)
        if fields is not None:
            rows = [_strip(row, eq, fields) for row in rows]
        out[eq.entity] = rows
        if next_cursor is not None:
            cursors[eq.entity] = next_cursor
    out["tx"] = txn.last_tx()
    if cursors:
        out["$cursors"] = cursors
    return out


def _restricted(rule: ReadRule, entity: str, where: Node) -> Node:
    required = rule(entity)
    return where if required == TRUE else And((required, where))


def _top(txn: Txn, eq: EntityQuery, rule: ReadRule) -> tuple[list[dict[str, Any]], str | None]:
    order = eq.order or DEFAULT_ORDER
    parts = order_parts(order, txn.dialect)
    after = None
    if eq.after is not None:
        after = cursor.decode(eq.after, eq.entity, order, parts, f"{eq.entity}.$after")
    params: list[Any] = []
    sql = select_sql(
        eq.entity,
        _restricted(rule, eq.entity, eq.where),
        parts,
        txn.dialect,
        params,
        limit=eq.limit + 1,  # one more than asked: is there a next page?
        offset=eq.offset,
        after=after,
    )
    records = txn.execute(sql, params).fetchall()
    page = records[: eq.limit]
    next_cursor = None
    if len(records) > eq.limit:
        next_cursor = cursor.encode(eq.entity, order, parts, list(page[-1][5:]))
    rows = [_wire(r) for r in page]
    _attach(txn, rows, eq, rule)
    return [_project(r, eq) for r in rows], next_cursor


def _wire(record: tuple[Any, ...]) -> dict[str, Any]:
    data = record[1]
    return {
        "id": record[0],
        **(ujson.loads(data) if isinstance(data, str) else data),
        "createdAt": record[2],
        "updatedAt": record[3],
        "userId": record[4],
    }


def _attach(txn: Txn, parents: list[dict[str, Any]], eq: EntityQuery, rule: ReadRule) -> None:
    """Fill each link key of `parents`, level by level, in the same transaction."""
    for lq in eq.links:
        if lq.forward:
            _attach_forward(txn, parents, lq, rule)
        else:
            _attach_reverse(txn, parents, lq, rule)


def _attach_forward(txn: Txn, parents: list[dict[str, Any]], lq: LinkQuery, rule: ReadRule) -> None:
    path = tuple(lq.link.field.split("."))
    ids = sorted({v for p in parents if isinstance(v := get_path(p, path), str)})
    found: dict[str, dict[str, Any]] = {}
    if ids:
        sub = lq.query
        params: list[Any] = []
        sql = by_ids_sql(
            sub.entity, _restricted(rule, sub.entity, sub.where), ids, txn.dialect, params
        )
        children = [_wire(r) for r in txn.execute(sql, params).fetchall()]
        _attach(txn, children, sub, rule)
        found = {c["id"]: _project(c, sub) for c in children}
    for parent in parents:
        value = get_path(parent, path)
        parent[lq.key] = found.get(value) if isinstance(value, str) else None


def _attach_reverse(txn: Txn, parents: list[dict[str, Any]], lq: LinkQuery, rule: ReadRule) -> None:
    sub = lq.query
    groups: dict[str, list[dict[str, Any]]] = {p["id"]: [] for p in parents}
    if groups:
        params: list[Any] = []
        sql = per_parent_sql(
            sub.entity,
            tuple(lq.link.field.split(".")),
            list(groups),
            _restricted(rule, sub.entity, sub.where),
            order_parts(sub.order or DEFAULT_ORDER, txn.dialect),
            sub.limit,
            sub.offset,
            txn.dialect,
            params,
        )
        records = txn.execute(sql, params).fetchall()
        children = [_wire(r) for r in records]
        _attach(txn, children, sub, rule)
        for record, child in zip(records, children, strict=True):
            groups[record[5]].append(_project(child, sub))
    for parent in parents:
        parent[lq.key] = groups[parent["id"]]


def _strip(row: dict[str, Any], eq: EntityQuery, fields: FieldRule) -> dict[str, Any]:
    """`row` (and its linked rows, level by level) without its unreadable fields."""
    strip = fields(eq.entity)
    out = strip(row) if strip is not None else row
    for lq in eq.links:
        child = row.get(lq.key)
        if isinstance(child, dict):
            linked: Any = _strip(child, lq.query, fields)
        elif isinstance(child, list):
            linked = [_strip(c, lq.query, fields) for c in child]
        else:
            continue
        out = {**out, lq.key: linked}
    return out


def _project(row: dict[str, Any], eq: EntityQuery) -> dict[str, Any]:
    """Keep id, the `$fields` asked for and the link keys."""
    if eq.fields is None:
        return row
    keep = {"id", *eq.fields, *(lq.key for lq in eq.links)}
    return {k: v for k, v in row.items() if k in keep}
