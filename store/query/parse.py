"""Parse `$where` objects and `order` strings into `store.query.ast` nodes.

Every malformed input raises InvalidArgument naming the offending path, so a
client can find its mistake in a deep query.
"""

from __future__ import annotations

import re
from typing import Any

from actorbase.errors import InvalidArgument
from store.query.ast import TRUE, And, Cmp, Node, Not, Or, OrderKey, Path

_SEGMENT_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]{0,63}$")
_MAX_PATH = 8


def parse_path(key: str, where: str) -> Path:
    """A dotted attribute path (``address.city``) as a tuple of segments."""
    parts = tuple(key.split("."))
    if len(parts) > _MAX_PATH or not all(_SEGMENT_RE.match(p) for p in parts):
        raise InvalidArgument(f"{where}: {key!r} is not a valid attribute path")
    return parts


def parse_where(raw: Any, where: str = "$where") -> Node:
    """Parse a `$where` object: keys are paths (equality) or `$and/$or/$not`."""
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: must be an object")
    items: list[Node] = []
    for key, value in raw.items():
        here = f"{where}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidArgument(f"{here}: must be a non-empty array of conditions")
            parts = tuple(parse_where(v, f"{here}[{i}]") for i, v in enumerate(value))
            items.append(And(parts) if key == "$and" else Or(parts))
        elif key == "$not":
            items.append(Not(parse_where(value, here)))
        elif key.startswith("$"):
            raise InvalidArgument(f"{here}: unknown operator {key!r}")
        else:
            items.append(_parse_condition(parse_path(key, here), value, here))
    if not items:
        return TRUE
    return items[0] if len(items) == 1 else And(tuple(items))


def _parse_condition(path: Path, value: Any, where: str) -> Node:
    if isinstance(value, dict) and any(k.startswith("$") for k in value):
        raise InvalidArgument(f"{where}: operators are not supported here yet: {sorted(value)}")
    return Cmp(path, "eq", value)


def parse_order(raw: str, where: str = "order") -> tuple[OrderKey, ...]:
    """``-createdAt,title`` → createdAt descending, then title ascending."""
    keys = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            raise InvalidArgument(f"{where}: empty sort key in {raw!r}")
        descending = part.startswith("-")
        keys.append(OrderKey(parse_path(part.lstrip("-+"), where), descending))
    return tuple(keys)
