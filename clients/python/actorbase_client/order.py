"""Sort keys that order rows as the server does (docs/query.md "Shaping"): by each
`$order` path, missing/null < booleans < numbers < strings < arrays = objects, `desc`
reversing that, and finally by id ascending."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = dict[str, Any]
Key = tuple[Any, ...]

_MISSING = object()
DEFAULT_ORDER = {"createdAt": "asc"}


def get_path(row: Row, path: str) -> Any:
    """The value at a dotted path, or _MISSING (a path through a non-object too)."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def is_missing(value: Any) -> bool:
    return value is _MISSING


def _rank(value: Any) -> tuple[Any, ...]:
    if value is _MISSING or value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4,)  # arrays and objects tie; the id decides


class _Desc:
    """A key part compared the other way round (only == and < are used by sort)."""

    __slots__ = ("v",)

    def __init__(self, v: tuple[Any, ...]) -> None:
        self.v = v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.v == other.v

    def __lt__(self, other: _Desc) -> bool:
        return other.v < self.v

    __hash__ = None  # type: ignore[assignment]


def key_function(order: dict[str, str] | None) -> Callable[[Row], Key]:
    """A key function for `$order` (the default when None)."""
    spec = [(path, str(d).lower() == "desc") for path, d in (order or DEFAULT_ORDER).items()]

    def key(row: Row) -> Key:
        parts: list[Any] = []
        for path, desc in spec:
            rank = _rank(get_path(row, path))
            parts.append(_Desc(rank) if desc else rank)
        parts.append(row.get("id", ""))
        return tuple(parts)

    return key


def order_fields(order: dict[str, str] | None) -> frozenset[str]:
    """Top-level attributes the order reads: an update to one of them may move a row."""
    return frozenset(path.split(".")[0] for path in (order or DEFAULT_ORDER))
