"""Client JSON, decoded in one place with the rules both databases can store.

JSON allows strings with NUL or an unpaired surrogate (`"\\u0000"`, `"\\ud800"`),
integers of any size, and (in ujson) `NaN` and `Infinity`; PostgreSQL's jsonb and text
refuse NUL and non-finite numbers, a lone surrogate cannot even be encoded as UTF-8,
and SQLite cannot bind an integer wider than 64 bits. Refusing them here, for every channel
(bodies, query parameters, WebSocket messages, SSE queries), keeps bad input a 400 on
both backends instead of a database error.
"""

from __future__ import annotations

import math
from typing import Any

import ujson

from actorbase.errors import InvalidArgument

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
"""SQLite binds nothing wider, and such a number would be stored but never matched."""


def decode(raw: str | bytes, what: str) -> Any:
    """Parse `raw`; InvalidArgument naming `what` if it is not JSON we can store."""
    try:
        value = ujson.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(f"{what} is not valid JSON") from None
    problem = _first_problem(value)
    if problem is not None:
        raise InvalidArgument(f"{what}: {problem}")
    return value


def _first_problem(value: Any) -> str | None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _storable(item):
                return "strings may not contain NUL or unpaired surrogates"
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not _storable(key):
                    return "keys may not contain NUL or unpaired surrogates"
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return "numbers must be finite (no NaN or Infinity)"
        elif isinstance(item, int) and not _INT64_MIN <= item <= _INT64_MAX:
            return "integers must fit in 64 bits"
    return None


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
