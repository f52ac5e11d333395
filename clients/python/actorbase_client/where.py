"""`$where` evaluated on a row in the client, with the server's semantics
(docs/query.md): used to decide whether an optimistic write enters a live result."""

from __future__ import annotations

import json
import re
from typing import Any

from .order import get_path, is_missing

Row = dict[str, Any]


def matches(where: dict[str, Any] | None, row: Row) -> bool:
    if not where:
        return True
    for key, cond in where.items():
        if key == "$and":
            ok = all(matches(w, row) for w in cond)
        elif key == "$or":
            ok = any(matches(w, row) for w in cond)
        elif key == "$not":
            ok = not matches(cond, row)
        else:
            ok = _test(get_path(row, key), cond)
        if not ok:
            return False
    return True


def _is_operators(cond: Any) -> bool:
    return isinstance(cond, dict) and bool(cond) and all(k.startswith("$") for k in cond)


def _test(value: Any, cond: Any) -> bool:
    if not _is_operators(cond):
        return _eq(value, cond)
    return all(_op(value, op, operand) for op, operand in cond.items())


def _op(value: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return _eq(value, operand)
    if op == "$ne":
        return not _eq(value, operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _compare(value, op, operand)
    if op == "$in":
        return any(_eq(value, o) for o in operand)
    if op == "$nin":
        return not any(_eq(value, o) for o in operand)
    if op in ("$like", "$ilike"):
        return isinstance(value, str) and _like(value, operand, op == "$ilike")
    if op == "$exists":
        return (not is_missing(value)) == bool(operand)
    if op == "$isNull":
        return (is_missing(value) or value is None) == bool(operand)
    if op == "$not":
        return not _test(value, operand)
    return False  # an operator this client does not know: the server will decide


def _kind(value: Any) -> str:
    if is_missing(value) or value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "json"


def _eq(value: Any, operand: Any) -> bool:
    kind = _kind(value)
    if kind != _kind(operand):
        return False
    if kind == "null":
        return True
    if kind == "json":
        return _canonical(value) == _canonical(operand)
    return bool(value == operand)


def _compare(value: Any, op: str, operand: Any) -> bool:
    kind = _kind(operand)
    if kind not in ("number", "string") or _kind(value) != kind:
        return False
    if op == "$gt":
        return bool(value > operand)
    if op == "$gte":
        return bool(value >= operand)
    if op == "$lt":
        return bool(value < operand)
    return bool(value <= operand)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _like(value: str, pattern: str, fold: bool) -> bool:
    out, escaped = [], False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    if fold:
        value, regex = value.translate(_ASCII_FOLD), "".join(out).translate(_ASCII_FOLD)
    else:
        regex = "".join(out)
    return re.fullmatch(regex, value, re.DOTALL) is not None
