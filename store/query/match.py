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
from typing import Any, NamedTuple

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
    if node.op == "like":
        return like(node.value, value)
    if node.op == "ilike":
        return like(node.value.translate(_ASCII_FOLD), value.translate(_ASCII_FOLD))
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


def like(pattern: str, text: str) -> bool:
    """Whether `text` matches the LIKE `pattern` (``%``, ``_``, backslash escapes), in
    O(len(text) * len(pattern)) at worst: no input can make it backtrack.

    Between two ``%`` a segment has a fixed length (``_`` is one character), so the
    leftmost place each middle segment fits leaves the most room for the rest: finding
    them left to right, after pinning the first segment to the start and the last to
    the end, answers exactly what LIKE does.
    """
    segments = _segments(pattern)
    first, last = segments[0], segments[-1]
    if len(segments) == 1:
        return len(text) == first.size and first.regex.match(text) is not None
    end = len(text) - last.size
    if end < first.size or first.regex.match(text) is None:
        return False
    if last.regex.match(text, end) is None:
        return False
    pos = first.size
    for segment in segments[1:-1]:
        found = segment.regex.search(text, pos, end)
        if found is None:
            return False
        pos = found.end()
    return True


class _Segment(NamedTuple):
    """A run of a LIKE pattern between two ``%``: `size` characters, each literal or
    any one (``_``), as a regex without repetition or alternation (it cannot backtrack)."""

    regex: re.Pattern[str]
    size: int


@functools.lru_cache(maxsize=512)
def _segments(pattern: str) -> tuple[_Segment, ...]:
    """`pattern` split on its unescaped ``%``: always at least one segment."""
    segments: list[_Segment] = []
    out: list[str] = []
    chars = iter(pattern)
    for c in chars:
        if c == "%":
            segments.append(_Segment(re.compile("".join(out), re.DOTALL), len(out)))
            out = []
        elif c == "_":
            out.append(".")
        else:
            out.append(re.escape(next(chars, c) if c == "\\" else c))
    segments.append(_Segment(re.compile("".join(out), re.DOTALL), len(out)))
    return tuple(segments)


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
