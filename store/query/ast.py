"""The parsed form of `$where` and `$order`, shared by the SQL compiler and the matcher."""

from __future__ import annotations

import dataclasses
from typing import Any

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Cmp:
    """`path op value`; `op` is one of the comparison operators, `eq` for equality."""

    path: Path
    op: str
    value: Any


@dataclasses.dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Cmp | And | Or | Not

TRUE = And(())
"""The empty conjunction: matches every row."""


@dataclasses.dataclass(frozen=True, slots=True)
class OrderKey:
    path: Path
    descending: bool = False
