"""Run a parsed `Query` inside one read transaction (one snapshot).

Call `run` from the read pool (`ctx.reads.read(lambda txn: run(txn, q, rule))`): all
entities and all nesting levels are read in the caller's single transaction, and the
result reports the tx that snapshot reflects. The read rule (permissions) is ANDed
into the SQL of every level, so limits and cursors count only readable rows.

Each row is decoded, stripped and projected once: a row that many parents link to is
one shared dict in the result. The result's size as JSON is counted as it is built,
every link counted once per parent that holds it (as the encoded response repeats
it), and QUERY_TOO_COMPLEX is raised as soon as it passes `max_bytes`, before a
large response is built or encoded. Sizes count characters, which is bytes for ASCII.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import ujson

from actorbase.errors import QueryTooComplex
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

Row = dict[str, Any]

_SYSTEM_SIZE = len('{"id":"","createdAt":1700000000000,"updatedAt":1700000000000,"userId":}')
"""The JSON a wire row adds to its data document, but for the id and userId values."""


def run(
    txn: Txn,
    query: Query,
    rule: ReadRule,
    fields: FieldRule | None = None,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """``{entity: [rows], "tx": N}``, plus ``"$cursors": {entity: cursor}`` for each
    top-level entity with more rows after this page. `fields` strips unreadable
    fields from the rows returned, at every level (before `$fields` projects them).
    Raises QueryTooComplex if the rows would pass `max_bytes` of JSON."""
    reader = _Reader(txn, rule, fields, _Budget(max_bytes))
    out: dict[str, Any] = {}
    cursors: dict[str, str] = {}
    for eq in query.entities:
        rows, next_cursor = reader.top(eq)
        out[eq.entity] = rows
        if next_cursor is not None:
            cursors[eq.entity] = next_cursor
    out["tx"] = txn.last_tx()
    if cursors:
        out["$cursors"] = cursors
    return out


def select_rows(
    txn: Txn,
    entity: str,
    where: Node,
    order: tuple[OrderKey, ...],
    limit: int,
    offset: int,
    max_bytes: int | None = None,
) -> list[Row]:
    """Wire rows of `entity` matching `where` (already restricted), as `Txn.select`
    orders them, for GET /api/data lists: QueryTooComplex past `max_bytes`."""
    params: list[Any] = []
    sql = select_sql(
        entity,
        where,
        order_parts(order, txn.dialect),
        txn.dialect,
        params,
        limit=limit,
        offset=offset,
    )
    budget = _Budget(max_bytes)
    rows = []
    for record in txn.execute(sql, params):
        budget.charge(_raw_size(record))
        rows.append(_wire(record))
    return rows


class _Budget:
    """Characters of JSON the result may hold; None: no cap."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, size: int) -> None:
        self.used += size
        if self.limit is not None and self.used > self.limit:
            raise QueryTooComplex(
                f"Query result exceeds {self.limit} bytes; narrow it with $where, $limit or $fields"
            )


class _Level:
    """One level's rows: the whole wire rows (to follow links from), the rows as
    returned (dicts shared wherever they appear), and each one's size as JSON."""

    __slots__ = ("full", "out", "sizes")

    def __init__(self) -> None:
        self.full: list[Row] = []
        self.out: list[Row] = []
        self.sizes: list[int] = []


class _Reader:
    """One query's reads: the snapshot, the reader's rules and the byte budget.

    Rows of a level are decoded as they come and charged at once (so many large rows
    stop the read early); a linked row is charged again for each parent holding it,
    as a number only, so a row shared by a thousand parents is never copied.
    """

    def __init__(self, txn: Txn, rule: ReadRule, fields: FieldRule | None, budget: _Budget):
        self._txn = txn
        self._rule = rule
        self._fields = fields
        self._budget = budget

    def top(self, eq: EntityQuery) -> tuple[list[Row], str | None]:
        txn = self._txn
        order = eq.order or DEFAULT_ORDER
        parts = order_parts(order, txn.dialect)
        after = None
        if eq.after is not None:
            after = cursor.decode(eq.after, eq.entity, order, parts, f"{eq.entity}.$after")
        params: list[Any] = []
        sql = select_sql(
            eq.entity,
            self._restricted(eq.entity, eq.where),
            parts,
            txn.dialect,
            params,
            limit=eq.limit + 1,  # one more than asked: is there a next page?
            offset=eq.offset,
            after=after,
        )
        records = list(txn.execute(sql, params))
        page = records[: eq.limit]
        next_cursor = None
        if len(records) > eq.limit:
            next_cursor = cursor.encode(eq.entity, order, parts, list(page[-1][5:]))
        level = self._level(page, eq)
        return level.out, next_cursor

    def _restricted(self, entity: str, where: Node) -> Node:
        required = self._rule(entity)
        return where if required == TRUE else And((required, where))

    def _level(self, records: Iterable[tuple[Any, ...]], eq: EntityQuery) -> _Level:
        """Decode, strip and project `records`, then fill their link keys, level by
        level, in the same transaction."""
        strip = self._fields(eq.entity) if self._fields is not None else None
        keep = None if eq.fields is None else {"id", *eq.fields}
        level = _Level()
        for record in records:
            full = _wire(record)
            out = full if strip is None else strip(full)
            if keep is not None:
                out = {k: v for k, v in out.items() if k in keep}
            size = _raw_size(record) if out is full else _size(out)
            self._budget.charge(size)
            level.full.append(full)
            level.out.append(out)
            level.sizes.append(size)
        for lq in eq.links:
            linked = self._forward(level.full, lq) if lq.forward else self._reverse(level.full, lq)
            for i, (value, size) in enumerate(linked):
                if level.out[i] is level.full[i]:
                    level.out[i] = dict(level.full[i])  # the links go on a copy
                level.out[i][lq.key] = value
                level.sizes[i] += len(lq.key) + 4 + size
        return level

    def _forward(self, parents: list[Row], lq: LinkQuery) -> list[tuple[Any, int]]:
        """Per parent, the one row its link field names (or None) and its size; each
        distinct row is read once and shared by every parent that names it."""
        path = tuple(lq.link.field.split("."))
        values = [get_path(p, path) for p in parents]
        ids = sorted({v for v in values if isinstance(v, str)})
        found: dict[str, tuple[Row, int]] = {}
        if ids:
            sub = lq.query
            params: list[Any] = []
            sql = by_ids_sql(
                sub.entity, self._restricted(sub.entity, sub.where), ids, self._txn.dialect, params
            )
            # Charged below once per parent that holds a row, instead of once per row.
            charged = self._budget.used
            level = self._level(self._txn.execute(sql, params), sub)
            self._budget.used = charged
            found = {
                full["id"]: (out, size)
                for full, out, size in zip(level.full, level.out, level.sizes, strict=True)
            }
        out: list[tuple[Any, int]] = []
        for value in values:
            row, size = found.get(value, (None, 4)) if isinstance(value, str) else (None, 4)
            if row is not None:
                self._budget.charge(size)
            out.append((row, size))
        return out

    def _reverse(self, parents: list[Row], lq: LinkQuery) -> list[tuple[Any, int]]:
        """Per parent, the list of rows whose link field holds its id, and its size."""
        sub = lq.query
        groups: dict[str, tuple[list[Row], list[int]]] = {p["id"]: ([], []) for p in parents}
        if groups:
            params: list[Any] = []
            sql = per_parent_sql(
                sub.entity,
                tuple(lq.link.field.split(".")),
                list(groups),
                self._restricted(sub.entity, sub.where),
                order_parts(sub.order or DEFAULT_ORDER, self._txn.dialect),
                sub.limit,
                sub.offset,
                self._txn.dialect,
                params,
            )
            records = list(self._txn.execute(sql, params))
            level = self._level(records, sub)
            for record, out, size in zip(records, level.out, level.sizes, strict=True):
                rows, sizes = groups[record[5]]
                rows.append(out)
                sizes.append(size)
        return [
            (rows, 2 + sum(sizes) + len(sizes))
            for rows, sizes in (groups[p["id"]] for p in parents)
        ]


def _wire(record: tuple[Any, ...]) -> Row:
    data = record[1]
    return {
        "id": record[0],
        **(ujson.loads(data) if isinstance(data, str) else data),
        "createdAt": record[2],
        "updatedAt": record[3],
        "userId": record[4],
    }


def _raw_size(record: tuple[Any, ...]) -> int:
    """The JSON size of a whole wire row, from its stored text (nothing encoded)."""
    data = record[1]
    data_size = len(data) if isinstance(data, str) else _size(data)
    return data_size + len(record[0]) + len(record[4] or "null") + _SYSTEM_SIZE


def _size(row: Row) -> int:
    return len(ujson.dumps(row, ensure_ascii=False, escape_forward_slashes=False))
