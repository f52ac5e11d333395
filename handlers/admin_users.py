"""/api/admin/users: list users, set a user's role and claims (admin token only)."""

from __future__ import annotations

import re
from typing import Any

import ujson

from actorbase.errors import InvalidArgument, PermissionDenied
from handlers.auth import AuthHandler, user_wire
from handlers.openapi import (
    ADMIN,
    BOOLEAN,
    INTEGER,
    OBJECT,
    STRING,
    array,
    obj,
    operation,
    param,
    ref,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_CLAIMS_BYTES = 4096
"""Claims ride in every access token; keep tokens small enough for a header."""
_ROLE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class _AdminHandler(AuthHandler):
    def require_admin(self) -> None:
        if not self.require_auth().is_admin:
            raise PermissionDenied("This endpoint needs the admin token")


class AdminUsersHandler(_AdminHandler):
    openapi = {
        "get": operation(
            "List users",
            "admin",
            {
                200: obj(
                    ("users", "total", "hasMore"),
                    users=array(ref("User")),
                    total=INTEGER,
                    hasMore=BOOLEAN,
                )
            },
            auth=ADMIN,
            params=(
                param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                param("offset", {"type": "integer", "minimum": 0}),
            ),
        )
    }

    async def get(self) -> None:
        self.require_admin()
        limit = self.int_argument("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = self.int_argument("offset", 0, 0, 10**9)
        users, total = await self.auth.list_users(limit, offset)
        self.send(
            {
                "users": [user_wire(u) for u in users],
                "total": total,
                "hasMore": offset + len(users) < total,
            }
        )


class AdminUserHandler(_AdminHandler):
    openapi = {
        "patch": operation(
            "Set a user's role and claims",
            "admin",
            {200: ref("User")},
            auth=ADMIN,
            params=(param("user_id", STRING, "path"),),
            body=obj(role=STRING, claims=OBJECT),
        )
    }

    async def patch(self, user_id: str) -> None:
        self.require_admin()
        body = self.json_object()
        unknown = set(body) - {"role", "claims"}
        if unknown:
            raise InvalidArgument(f"unknown keys {sorted(unknown)}; expected role, claims")
        if not body:
            raise InvalidArgument("give role, claims or both")
        user = await self.auth.update_user(
            user_id, _role(body.get("role")), _claims(body.get("claims"))
        )
        self.send(user_wire(user))


def _role(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ROLE_RE.fullmatch(value):
        raise InvalidArgument("role: must be 1-64 letters, digits or _.:-")
    return value


def _claims(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument("claims: must be an object")
    if len(ujson.dumps(value)) > MAX_CLAIMS_BYTES:
        raise InvalidArgument(f"claims: at most {MAX_CLAIMS_BYTES} bytes of JSON")
    return value
