"""Schema introspection kept current by the writer: `ab_schema_stats(entity, attribute,
type, count)`.

The transactor calls `apply` inside each mutation's savepoint (pipelined on
PostgreSQL, once for the group's committed mutations: a refusal replays the group),
so the counts commit or roll back with the rows they describe, survive restarts and stay right with
several server processes on one database (their writes serialize on the tx counter).
`describe` then answers /api/admin/schema from this small table in milliseconds,
however many rows there are.

Counted per entity: `id` (every row has one, so its count is the row count), `userId`
(rows with an owner) and each top-level attribute by JSON type (string, number,
boolean, object, array). Null is not a type: a null or absent value is not counted.
Migration 4 (store.migrations) creates the table and backfills it from ab_rows once.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from store.base import Txn
from store.dialect import json_type_of
from store.query.links import Links

if TYPE_CHECKING:
    from store.mutations import Change

ROWS = "id"
"""The attribute every row carries: its count is the entity's row count."""
OWNER = "userId"
_SKIPPED = frozenset({"createdAt", "updatedAt"})
"""Server-set on every row: they say nothing about the data."""
_CONVENTION = re.compile(r"^([a-z][a-z0-9_]{0,60})Id$")
"""`listId → lists`: the naming convention of store.query.links."""

Key = tuple[str, str, str]


def _keys(entity: str, row: Mapping[str, Any] | None) -> Iterable[Key]:
    """The (entity, attribute, type) counters one row in wire form adds to."""
    if row is None:
        return
    for name, value in row.items():
        kind = json_type_of(value)
        if kind != "null" and name not in _SKIPPED:  # null is no type: it never makes mixed
            yield entity, name, kind


def deltas(changes: Iterable[Change]) -> dict[Key, int]:
    """How the counters move for `changes` (zero moves left out)."""
    moves: collections.Counter[Key] = collections.Counter()
    for change in changes:
        moves.subtract(_keys(change.entity, change.before))
        moves.update(_keys(change.entity, change.after))
    return {key: n for key, n in moves.items() if n}


def apply(txn: Txn, changes: Iterable[Change]) -> None:
    """Move the counters for `changes` in the caller's (the transactor's) transaction:
    one batched upsert, then counters that reached zero are deleted, so the table only
    holds what exists."""
    moves = sorted(deltas(changes).items())
    if not moves:
        return
    rows = [(*key, n) for key, n in moves]
    if not txn.move_counts(rows):  # pipelined: with the group's writes (store.pgbatch)
        txn.executemany(_UPSERT, rows)
    gone = [key for key, n in moves if n < 0]
    if gone:
        txn.executemany(
            "DELETE FROM ab_schema_stats WHERE entity = ? AND attribute = ? AND type = ? "
            "AND count <= 0",
            gone,
        )


_ADD = (
    " ON CONFLICT (entity, attribute, type) "
    "DO UPDATE SET count = ab_schema_stats.count + excluded.count"
)
_UPSERT = "INSERT INTO ab_schema_stats (entity, attribute, type, count) VALUES (?, ?, ?, ?)" + _ADD


def counts(txn: Txn) -> list[tuple[str, str, str, int]]:
    """Every counter, ordered; a read of a table with one row per entity, attribute
    and type."""
    return txn.execute(
        "SELECT entity, attribute, type, count FROM ab_schema_stats WHERE count > 0 "
        "ORDER BY entity, attribute, type"
    ).fetchall()


def describe(
    records: Iterable[tuple[str, str, str, int]],
    links: Links,
    declared: Mapping[str, Mapping[str, str]],
) -> list[dict[str, Any]]:
    """The seed's `entities` list from counter rows, merged with declared attribute
    types (`{entity: {attribute: type}}`; a declared attribute without data counts 0,
    and the declared type wins over what the data shows)."""
    inferred: dict[str, dict[str, dict[str, int]]] = {}
    for entity, attribute, kind, n in records:
        inferred.setdefault(entity, {}).setdefault(attribute, {})[kind] = int(n)
    entities = []
    for entity in sorted(set(inferred) | set(declared)):
        attrs = inferred.get(entity, {})
        types = dict(declared.get(entity, {}))
        rows = sum(attrs.get(ROWS, {}).values())
        attributes = []
        for name in sorted((set(attrs) | set(types)) - {ROWS, OWNER}):
            seen = attrs.get(name, {})
            kind = types.get(name) or (next(iter(seen)) if len(seen) == 1 else "mixed")
            attributes.append({"name": name, "type": kind, "count": sum(seen.values())})
        entities.append(
            {
                "name": entity,
                "count": rows,
                "attributes": attributes,
                "relations": _relations(entity, attrs, links),
            }
        )
    return entities


def _relations(
    entity: str, attrs: Mapping[str, Mapping[str, int]], links: Links
) -> list[dict[str, Any]]:
    """`userId → users`, declared links out of `entity`, and `xxxId → xxxs` attributes;
    the count is of rows whose attribute holds a string (an id)."""
    targets: dict[str, str] = {OWNER: "users"}
    for name in attrs:
        match = _CONVENTION.fullmatch(name)
        if match:
            targets[name] = match.group(1) + "s"
    for link in links.declared:
        if link.source == entity:
            targets[link.field] = link.target
    return [
        {"name": name, "target": target, "count": attrs.get(name, {}).get("string", 0)}
        for name, target in sorted(targets.items())
        if name in attrs or any(link.field == name for link in links.declared)
    ]
