"""Rows as stored and as sent: system fields in columns, attributes in JSON.

A row's wire form is ``{"id", **attributes, "createdAt", "updatedAt", "userId"}``;
the system fields are set by the server and never taken from a client's attributes.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import ujson

from actorbase.errors import InvalidArgument

SYSTEM_FIELDS = ("id", "createdAt", "updatedAt", "userId")
"""Attributes the server owns; clients cannot set them through `data`."""

SYSTEM_COLUMNS = {
    "id": "id",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "userId": "user_id",
}

USERS = "users"
"""The system entity served from the accounts table (read-only through the data API)."""

MAX_DEPTH = 32
"""Levels of objects and arrays in a written document, its own object being level 1:
deeper ones are refused before anything recursive (merging, validation, encoding)
walks them."""

MAX_NAME = 256
"""Characters in an attribute name, at any depth: the names are keys of the schema
introspection table, whose PostgreSQL btree index takes ~2.7 KB at most."""

ENTITY_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ID_RE = re.compile(r"^[A-Za-z0-9_.:@~-]{1,128}$")


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One stored row; `data` holds only the client's attributes."""

    entity: str
    id: str
    data: dict[str, Any]
    created_at: int
    updated_at: int
    user_id: str | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.data,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "userId": self.user_id,
        }


def check_entity(name: Any, where: str = "entity") -> str:
    if not isinstance(name, str) or not ENTITY_RE.fullmatch(name):
        raise InvalidArgument(
            f"{where}: entity names match ^[a-z][a-z0-9_]{{0,62}}$, got {_show(name)}"
        )
    return name


def check_id(value: Any, where: str = "id") -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise InvalidArgument(
            f"{where}: ids are 1-128 letters, digits or _ . : @ ~ -, got {_show(value)}"
        )
    return value


def attributes(body: Any, where: str = "data") -> dict[str, Any]:
    """The client attributes of a request body, without the server-owned fields.

    `userId` is kept out too: only an admin may set it, and callers handle that.
    """
    if not isinstance(body, dict):
        raise InvalidArgument(f"{where}: must be a JSON object")
    check_document(body, where)
    return {k: v for k, v in body.items() if k not in SYSTEM_FIELDS}


def check_document(document: dict[str, Any], where: str) -> None:
    """Refuse a document nested over MAX_DEPTH levels or with a name over MAX_NAME
    characters. Iterative: a deep document is exactly what would overflow a recursion."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidArgument(
                f"{where}: objects and arrays nest at most {MAX_DEPTH} levels deep"
            )
        if isinstance(value, dict):
            for name in value:
                if len(name) > MAX_NAME:
                    raise InvalidArgument(
                        f"{where}: attribute names are at most {MAX_NAME} characters, "
                        f"got {_show(name)} ({len(name)})"
                    )
            children = value.values()
        else:
            children = value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def merge_patch(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge: nested objects merge, ``null`` removes a key."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = _strip_nulls(value) if isinstance(value, dict) else value
    return merged


def _strip_nulls(value: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _strip_nulls(v) if isinstance(v, dict) else v for k, v in value.items() if v is not None
    }


def dumps(value: Any) -> str:
    """Canonical JSON for storage: sorted keys, so equal objects store equal text."""
    return ujson.dumps(value, sort_keys=True, ensure_ascii=False, escape_forward_slashes=False)


def _show(value: Any) -> str:
    text = ujson.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
