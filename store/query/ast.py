"""The parsed query, shared by the SQL compiler and the Python matcher.

A `$where` becomes a tree of `Cmp`, `And`, `Or` and `Not`; sugar such as `$ne`,
`$in` or `$isNull` is expanded by the parser, so both evaluators implement only the
operators listed in `CMP_OPS`, and they agree by construction on everything else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

Path = tuple[str, ...]

CMP_OPS = ("eq", "gt", "gte", "lt", "lte", "like", "ilike", "exists")
"""`eq`: equal by value (null matches null or missing); `gt..lte`: same JSON type and
ordered (number or string operand); `like`/`ilike`: string pattern; `exists`: the key
is present (value True) or absent (value False)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Cmp:
    """`path op value`, with `op` one of `CMP_OPS`."""

    path: Path
    op: str
    value: Any


@dataclasses.dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Or:
    """Matches when any item does; the empty Or matches nothing."""

    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Cmp | And | Or | Not

TRUE = And(())
"""The empty conjunction: matches every row."""

FALSE = Or(())
"""The empty disjunction: matches no row."""


@dataclasses.dataclass(frozen=True, slots=True)
class OrderKey:
    path: Path
    descending: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """`source.field → target`: rows of `source` whose `field` holds a `target` id.

    Followed forward from a `source` row (`name`, one row or null) or in reverse
    from a `target` row (`reverse`, a list of `source` rows).
    """

    source: str
    field: str
    target: str
    name: str
    reverse: str


@dataclasses.dataclass(frozen=True, slots=True)
class EntityQuery:
    """One entity's part of a query: filter, shape, and nested links."""

    entity: str
    where: Node = TRUE
    order: tuple[OrderKey, ...] = ()
    limit: int = 100
    offset: int = 0
    after: str | None = None
    """An opaque cursor from a previous page (top level only)."""
    fields: tuple[str, ...] | None = None
    """Attributes to keep (id always kept); None keeps all."""
    links: tuple[LinkQuery, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class LinkQuery:
    """A nested key: `key` in each parent row, filled by following `link`."""

    key: str
    link: Link
    forward: bool
    """True: parent.field → one target row (or null); False: the list of source rows."""
    query: EntityQuery


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    """A whole POST /api/query body, every entity read from one snapshot."""

    entities: tuple[EntityQuery, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Bounds a query must stay within (QUERY_TOO_COMPLEX beyond them)."""

    max_depth: int = 4
    max_operators: int = 200
    max_rows: int = 50_000
    max_limit: int = 1000
    default_limit: int = 100
    max_bytes: int | None = None
    """Largest result as JSON (see store.query.execute); None: no cap."""
