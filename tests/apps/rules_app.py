"""Test app: one rule of every kind, and functions that read and write through them."""

from __future__ import annotations

from typing import Any

from store.functions import Context

OWNER = {"userId": "$auth.id"}
NOT_ARCHIVED = {"userId": "$auth.id", "status": {"$ne": "archived"}}

rules = {
    "notes": {
        "read": {"$or": [OWNER, {"public": True}]},
        "create": NOT_ARCHIVED,
        "update": NOT_ARCHIVED,
        "delete": {"userId": "$auth.id", "$auth.role": "editor"},
        "fields": {
            "secret": {"read": OWNER},
            "internal": {"read": False},
            "pinned": {"write": {"$auth.role": "editor"}},
        },
    },
    "teamdocs": {
        "read": {"$auth.claims.team": {"$exists": True}, "team": "$auth.claims.team"},
    },
    "$storage": {
        "read": {"$or": [OWNER, {"path": {"$like": "public/%"}}]},
        "write": {"userId": "$auth.id", "path": {"$not": {"$like": "readonly/%"}}},
        "delete": {"userId": "$auth.id", "path": {"$not": {"$like": "keep/%"}}},
    },
    "$rooms": {"$or": [{"room": {"$like": "public-%"}}, {"room": "$auth.id"}]},
}

schema = {
    "notes": {"links": {"owner": {"field": "userId", "to": "users", "reverse": "notes"}}},
}


def query(ctx: Context, q: dict[str, Any]) -> dict[str, Any]:
    return ctx.db.query(q)


def get(ctx: Context, entity: str, id: str) -> dict[str, Any] | None:
    return ctx.db.get(entity, id)


def write(ctx: Context, op: str, entity: str, id: str, data: dict[str, Any] | None = None) -> str:
    if op == "create":
        return ctx.db.insert(entity, data or {}, id)
    if op == "merge":
        ctx.db.merge(entity, id, data or {})
    elif op == "delete":
        ctx.db.delete(entity, id)
    return id


functions = [query, get, write]
