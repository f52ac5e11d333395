"""Test app: a schema with types, required and unique attributes, indexes and a link
the naming convention would not find."""

from __future__ import annotations

schema = {
    "handles": {
        "attributes": {
            "name": {"type": "string", "required": True, "unique": True},
            "score": {"type": "integer", "index": True},
            "tags": {"type": "array"},
            "profile": {"type": "object"},
            "active": {"type": "boolean"},
            "rating": {"type": "number"},
        },
        "indexes": ["profile.city"],
    },
    "posts": {
        "attributes": {"title": {"type": "string", "required": True}},
        "links": {"author": {"field": "writtenBy", "to": "handles", "reverse": "posts"}},
    },
}
