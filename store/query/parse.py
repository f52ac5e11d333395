"""Parse query JSON into `store.query.ast` nodes.

Every malformed input raises InvalidArgument naming the offending path (e.g.
``todos.$where.priority.$gt``) so a client can find its mistake in a deep query;
inputs beyond `Limits` raise QueryTooComplex naming the limit. Nothing is clamped.

The parser and both evaluators recurse, and SQLite's parser stack overflows at ~14
nested `NOT`s (each compiles to `NOT coalesce(…)`), so a `$where` is measured by
`check_nesting`, without recursion, before anything else touches it.
"""

from __future__ import annotations

import re
from typing import Any

from actorbase.errors import InvalidArgument, QueryTooComplex
from store.query.ast import (
    FALSE,
    TRUE,
    And,
    Cmp,
    EntityQuery,
    Limits,
    LinkQuery,
    Node,
    Not,
    Or,
    OrderKey,
    Path,
    Query,
)
from store.query.links import Links
from store.rows import ENTITY_RE

SEGMENT_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]{0,63}$")
"""One path segment. Safe to embed in SQL literals: no quotes, dots, commas, braces."""
_MAX_PATH = 8
_RESERVED = {"tx"}
"""Response keys next to the entities: an entity cannot be queried under these names."""
_MAX_OFFSET = 10**9
_ENTITY_KEYS = {"$where", "$order", "$limit", "$offset", "$after", "$fields"}
MAX_NESTING = 10
"""Most `$and`/`$or`/`$not` levels in one `$where` (or rule). Measured: 13 nested NOTs
inside a link's per-parent query are the most SQLite parses; this leaves room for one
NOT from `$ne`/`$nin` at the leaf and for the rule ANDed beside the query."""
MAX_JSON_DEPTH = 100
"""Deepest JSON anywhere in a `$where` (operands included): no storable row is deeper,
and the matcher compares values recursively."""
MAX_PATTERN = 1000
"""Longest `$like`/`$ilike` pattern, characters (SQLite refuses ~50,000 bytes)."""
_BOOLEAN = ("$and", "$or", "$not")


def check_nesting(raw: Any, where: str) -> None:
    """QueryTooComplex if `raw` nests `$and/$or/$not` deeper than MAX_NESTING or JSON
    deeper than MAX_JSON_DEPTH. Iterative, so any input is measured safely."""
    stack: list[tuple[Any, int, int, Any]] = [(raw, 0, 0, None)]
    while stack:
        value, levels, depth, trail = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise QueryTooComplex(f"{_trail(where, trail)}: nests deeper than {MAX_JSON_DEPTH}")
        if isinstance(value, dict):
            for key, inner in value.items():
                nested = levels + (key in _BOOLEAN)
                here = (trail, key)
                if nested > MAX_NESTING:
                    raise QueryTooComplex(
                        f"{_trail(where, here)}: $and/$or/$not nest deeper than {MAX_NESTING}"
                    )
                stack.append((inner, nested, depth + 1, here))
        elif isinstance(value, list):
            stack.extend((v, levels, depth + 1, (trail, i)) for i, v in enumerate(value))


def _trail(where: str, trail: Any) -> str:
    """The path `check_nesting` reached, from its (parent, key) links."""
    keys = []
    while trail is not None:
        trail, key = trail
        keys.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return where + "".join(reversed(keys))


def parse_path(key: str, where: str) -> Path:
    """A dotted attribute path (``address.city``) as a tuple of segments."""
    parts = tuple(key.split("."))
    if len(parts) > _MAX_PATH or not all(SEGMENT_RE.fullmatch(p) for p in parts):
        raise InvalidArgument(f"{where}: {key!r} is not a valid attribute path")
    return parts


def parse_where(raw: Any, where: str = "$where") -> Node:
    """Parse a `$where` object: keys are paths (with a value or operators) or
    `$and/$or/$not`; several keys are ANDed."""
    check_nesting(raw, where)
    return _parse_where(raw, where)


def parse_filter(raw: Any, where: str, limits: Limits) -> Node:
    """A `$where` on its own (GET /api/data `where`), within QUERY_MAX_OPERATORS."""
    node = parse_where(raw, where)
    _Budget(limits).spend_operators(count_operators(node), where)
    return node


def _parse_where(raw: Any, where: str) -> Node:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: must be an object")
    items: list[Node] = []
    for key, value in raw.items():
        here = f"{where}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidArgument(f"{here}: must be a non-empty array of conditions")
            parts = tuple(_parse_where(v, f"{here}[{i}]") for i, v in enumerate(value))
            items.append(And(parts) if key == "$and" else Or(parts))
        elif key == "$not":
            items.append(Not(_parse_where(value, here)))
        elif key.startswith("$"):
            raise InvalidArgument(f"{here}: unknown operator {key!r}")
        else:
            items.append(_parse_condition(parse_path(key, here), value, here))
    return _and(items)


def _and(items: list[Node]) -> Node:
    if not items:
        return TRUE
    return items[0] if len(items) == 1 else And(tuple(items))


def _is_operators(value: Any) -> bool:
    return isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$") for k in value)


def _parse_condition(path: Path, value: Any, where: str) -> Node:
    """`{"path": value}` (equality by value) or `{"path": {"$op": operand, ...}}`."""
    if not _is_operators(value):
        return Cmp(path, "eq", value)
    if not all(k.startswith("$") for k in value):
        raise InvalidArgument(f"{where}: cannot mix operators and attributes in one object")
    return _and(
        [_parse_operator(path, op, operand, f"{where}.{op}") for op, operand in value.items()]
    )


def _parse_operator(path: Path, op: str, operand: Any, where: str) -> Node:
    if op == "$eq":
        return Cmp(path, "eq", operand)
    if op == "$ne":
        return Not(Cmp(path, "eq", operand))
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(operand, bool) or not isinstance(operand, int | float | str):
            raise InvalidArgument(f"{where}: must be a number or a string")
        return Cmp(path, op[1:], operand)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise InvalidArgument(f"{where}: must be an array")
        any_of = Or(tuple(Cmp(path, "eq", v) for v in operand)) if operand else FALSE
        return any_of if op == "$in" else Not(any_of)
    if op in ("$like", "$ilike"):
        if not isinstance(operand, str):
            raise InvalidArgument(f"{where}: must be a string pattern")
        if len(operand) > MAX_PATTERN:
            raise QueryTooComplex(f"{where}: pattern longer than {MAX_PATTERN} characters")
        if re.search(r"(?<!\\)(\\\\)*\\\Z", operand):
            raise InvalidArgument(f"{where}: pattern ends with an unescaped backslash")
        return Cmp(path, op[1:], operand)
    if op in ("$exists", "$isNull"):
        if not isinstance(operand, bool):
            raise InvalidArgument(f"{where}: must be true or false")
        if op == "$exists":
            return Cmp(path, "exists", operand)
        is_null = Cmp(path, "eq", None)
        return is_null if operand else Not(is_null)
    if op == "$not":
        if not _is_operators(operand):
            return Not(Cmp(path, "eq", operand))
        return Not(_parse_condition(path, operand, where))
    raise InvalidArgument(f"{where}: unknown operator {op!r}")


def parse_order(raw: str, limits: Limits, where: str = "order") -> tuple[OrderKey, ...]:
    """``-createdAt,title`` → createdAt descending, then title ascending; at most
    QUERY_MAX_OPERATORS keys, as in a query's `$order`."""
    _Budget(limits).spend_operators(raw.count(",") + 1, where)
    keys = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            raise InvalidArgument(f"{where}: empty sort key in {raw!r}")
        descending = part.startswith("-")
        keys.append(OrderKey(parse_path(part.lstrip("-+"), where), descending))
    return tuple(keys)


def parse_order_object(raw: Any, where: str = "$order") -> tuple[OrderKey, ...]:
    """``{"priority": "desc", "createdAt": "asc"}``: key order is sort precedence."""
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: must be an object of attribute → 'asc' or 'desc'")
    keys = []
    for key, direction in raw.items():
        here = f"{where}.{key}"
        if direction not in ("asc", "desc"):
            raise InvalidArgument(f"{here}: must be 'asc' or 'desc'")
        keys.append(OrderKey(parse_path(key, here), direction == "desc"))
    return tuple(keys)


def count_operators(node: Node) -> int:
    """Comparisons and logical operators in `node` (what QUERY_MAX_OPERATORS bounds)."""
    if isinstance(node, Cmp):
        return 1
    if isinstance(node, Not):
        return 1 + count_operators(node.item)
    return (1 if node.items else 0) + sum(count_operators(n) for n in node.items)


def parse_query(raw: Any, links: Links, limits: Limits) -> Query:
    """A POST /api/query body: entity name → entity query."""
    if not isinstance(raw, dict):
        raise InvalidArgument("query: must be an object of entity → query")
    entities = []
    budget = _Budget(limits)
    for name, body in raw.items():
        if name in _RESERVED or not ENTITY_RE.fullmatch(name):
            raise InvalidArgument(
                f"{name}: not a queryable entity name (^[a-z][a-z0-9_]{{0,62}}$, not 'tx')"
            )
        entities.append(_parse_entity(name, body, name, links, limits, budget, 1, 1))
    return Query(tuple(entities))


class _Budget:
    """Operators and rows spent so far across the whole query."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.operators = 0
        self.rows = 0

    def spend_operators(self, n: int, where: str) -> None:
        self.operators += n
        if self.operators > self.limits.max_operators:
            raise QueryTooComplex(
                f"{where}: query uses more than QUERY_MAX_OPERATORS="
                f"{self.limits.max_operators} operators"
            )

    def spend_rows(self, n: int, where: str) -> None:
        self.rows += n
        if self.rows > self.limits.max_rows:
            raise QueryTooComplex(
                f"{where}: query could return {self.rows} rows, over QUERY_MAX_ROWS="
                f"{self.limits.max_rows}; lower $limit"
            )


def _parse_entity(
    entity: str,
    raw: Any,
    where: str,
    links: Links,
    limits: Limits,
    budget: _Budget,
    depth: int,
    parents: int,
    forward: bool = False,
) -> EntityQuery:
    """One entity level. `parents` bounds how many parent rows this level hangs off,
    so `parents * $limit` bounds the rows it can return."""
    if depth > limits.max_depth:
        raise QueryTooComplex(f"{where}: nesting deeper than QUERY_MAX_DEPTH={limits.max_depth}")
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: must be an object")
    if forward:
        shaping = sorted(k for k in raw if k in ("$order", "$limit", "$offset", "$after"))
        if shaping:
            raise InvalidArgument(f"{where}: a link to one row takes no {', '.join(shaping)}")
    node = parse_where(raw["$where"], f"{where}.$where") if "$where" in raw else TRUE
    budget.spend_operators(count_operators(node), f"{where}.$where")
    order = parse_order_object(raw["$order"], f"{where}.$order") if "$order" in raw else ()
    budget.spend_operators(len(order), f"{where}.$order")
    limit = _count(raw, "$limit", where, limits.default_limit, 1, None)
    if limit > limits.max_limit:
        raise QueryTooComplex(f"{where}.$limit: at most {limits.max_limit}, got {limit}")
    offset = _count(raw, "$offset", where, 0, 0, _MAX_OFFSET)
    after = raw.get("$after")
    if after is not None:
        if depth > 1:
            raise InvalidArgument(f"{where}.$after: cursors page top-level entities only")
        if not isinstance(after, str):
            raise InvalidArgument(f"{where}.$after: must be a cursor string")
        if offset:
            raise InvalidArgument(f"{where}.$after: cannot be combined with $offset")
    fields = _fields(raw["$fields"], f"{where}.$fields") if "$fields" in raw else None
    rows = parents * (1 if forward else limit)
    budget.spend_rows(rows, where)
    nested = []
    for key, value in raw.items():
        if key in _ENTITY_KEYS:
            continue
        here = f"{where}.{key}"
        if key.startswith("$"):
            raise InvalidArgument(f"{here}: unknown key {key!r}")
        resolved = links.resolve(entity, key)
        if resolved is None:
            raise InvalidArgument(f"{here}: {entity} has no link named {key!r}")
        link, is_forward = resolved
        child = link.target if is_forward else link.source
        sub = _parse_entity(child, value, here, links, limits, budget, depth + 1, rows, is_forward)
        nested.append(LinkQuery(key, link, is_forward, sub))
    return EntityQuery(entity, node, order, limit, offset, after, fields, tuple(nested))


def _count(raw: dict[str, Any], key: str, where: str, default: int, lo: int, hi: int | None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise InvalidArgument(f"{where}.{key}: must be a whole number ≥ {lo}")
    if hi is not None and value > hi:
        raise InvalidArgument(f"{where}.{key}: must be at most {hi}")
    return value


def _fields(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
        raise InvalidArgument(f"{where}: must be an array of attribute names")
    for i, name in enumerate(raw):
        if not SEGMENT_RE.fullmatch(name):
            raise InvalidArgument(f"{where}[{i}]: {name!r} is not a top-level attribute name")
    return tuple(raw)
