"""Which nested keys of a query follow which links.

Declared links (from the app definition) win; without one, the naming convention
applies: a field `xxxId` holds an id of entity `xxxs` (`listId → lists`,
`userId → users`). `Links` is a plain immutable value handed to the parser, so tests
and the app loader each build their own; nothing here is global.
"""

from __future__ import annotations

import dataclasses
import re

from store.query.ast import Link

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclasses.dataclass(frozen=True)
class Links:
    """The declared links of an app; `resolve` falls back to the naming convention."""

    declared: tuple[Link, ...] = ()

    def resolve(self, entity: str, key: str) -> tuple[Link, bool] | None:
        """The link nested key `key` of `entity` follows, and whether it is followed
        forward (one row) or in reverse (a list); None if there is none."""
        for link in self.declared:
            if link.source == entity and link.name == key:
                return link, True
            if link.target == entity and link.reverse == key:
                return link, False
        if not _NAME_RE.fullmatch(key):
            return None
        if key.endswith("s") and entity.endswith("s"):
            field = entity[:-1] + "Id"
            return Link(key, field, entity, entity[:-1], key), False
        return Link(entity, key + "Id", key + "s", key, entity), True


def link(source_field: str, target: str, name: str, reverse: str) -> Link:
    """A declared link from ``"todos.userId"``, e.g. ``link("todos.userId", "users",
    "user", "todos")``."""
    source, _, field = source_field.partition(".")
    return Link(source, field, target, name, reverse)


NO_LINKS = Links()
"""An app that declares no links: the naming convention alone."""
