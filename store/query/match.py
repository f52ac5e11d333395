"""The query language evaluated in Python against one wire row.

`matches(node, row)` answers exactly what the SQL compiled from `node` answers for
that row on either backend, and `compare` orders rows exactly as the compiled
ORDER BY does (type rank, value within type, then id). Live queries use these to
diff without a round trip; tests/store/test_query_property.py holds them to it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from store.dialect import TYPE_RANK, json_type_of
from store.query.ast import And, Cmp, Node, Not, Or, OrderKey, Path
from store.rows import dumps

MISSING: Any = object()
"""What `get_path` returns where the row has no value (distinct from JSON null)."""

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def get_path(row: dict[str, Any], path: Path) -> Any:
    """The value at `path` in `row`, or MISSING (a non-object on the way is missing)."""
    value: Any = row
    for segment in path:
        if not isinstance(value, dict) or segment not in value:
            return MISSING
        value = value[segment]
    return value


def matches(node: Node, row: dict[str, Any]) -> bool:
    """Whether the wire row (id, createdAt, updatedAt, userId, attributes) matches."""
    if isinstance(node, And):
        return all(matches(n, row) for n in node.items)
    if isinstance(node, Or):
        return any(matches(n, row) for n in node.items)
    if isinstance(node, Not):
        return not matches(node.item, row)
    return _cmp(node, get_path(row, node.path))


def _cmp(node: Cmp, value: Any) -> bool:
    if node.op == "exists":
        return (value is not MISSING) == node.value
    if node.op == "eq":
        if node.value is None:
            return value is MISSING or value is None
        return value is not MISSING and _equal(value, node.value)
    if value is MISSING or json_type_of(value) != json_type_of(node.value):
        return False
    if node.op in ("like", "ilike"):
        if node.op == "ilike":
            return (
                _like(node.value.translate(_ASCII_FOLD)).fullmatch(value.translate(_ASCII_FOLD))
                is not None
            )
        return _like(node.value).fullmatch(value) is not None
    if node.op == "gt":
        return value > node.value
    if node.op == "gte":
        return value >= node.value
    if node.op == "lt":
        return value < node.value
    return value <= node.value


def _equal(a: Any, b: Any) -> bool:
    kind = json_type_of(a)
    if kind != json_type_of(b):
        return False
    if kind in ("array", "object"):
        return dumps(a) == dumps(b)
    return a == b


@functools.lru_cache(maxsize=512)
def _like(pattern: str) -> re.Pattern[str]:
    """A LIKE pattern (``%``, ``_``, backslash escapes) as a regex."""
    out = []
    chars = iter(pattern)
    for c in chars:
        if c == "\\":
            out.append(re.escape(next(chars)))
        elif c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def sort_key(row: dict[str, Any], path: Path) -> tuple[int, Any, Any]:
    """(type rank, number, string) as the compiled ORDER BY sees one key."""
    value = get_path(row, path)
    if value is MISSING:
        return (0, None, None)
    kind = json_type_of(value)
    if kind == "boolean":
        return (1, int(value), None)
    if kind == "number":
        return (2, value, None)
    if kind == "string":
        return (3, None, value)
    return (TYPE_RANK[kind], None, None)


def compare(order: tuple[OrderKey, ...]) -> Callable[[dict[str, Any], dict[str, Any]], int]:
    """A cmp function ordering wire rows as `order` plus the id tie-break does."""

    def cmp(a: dict[str, Any], b: dict[str, Any]) -> int:
        for key in order:
            ka, kb = sort_key(a, key.path), sort_key(b, key.path)
            if ka != kb:
                result = -1 if ka < kb else 1
                return -result if key.descending else result
            if key.path == ("id",):
                return 0
        return (a["id"] > b["id"]) - (a["id"] < b["id"])

    return cmp
