"""/api/admin/users: find users, set role and claims, lock and unlock, reset MFA, list
and revoke sessions (admin token only; the admin dashboard's Users page)."""

from __future__ import annotations

import re
from typing import Any

import ujson

from actorbase.errors import InvalidArgument, PermissionDenied
from handlers.auth import AuthHandler, iso, user_wire
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
from store.accounts import User
from store.base import now_ms

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_SEARCH = 254
MAX_CLAIMS_BYTES = 4096
"""Claims ride in every access token; keep tokens small enough for a header."""
_ROLE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_USER_ID = param("user_id", STRING, "path")
_ADMIN_USER = {
    "allOf": [
        ref("User"),
        obj(
            ("locked",),
            locked=BOOLEAN,
            lockedAt={"type": ["string", "null"], "format": "date-time"},
            lockedUntil={"type": ["string", "null"], "format": "date-time"},
        ),
    ]
}


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
                    users=array(_ADMIN_USER),
                    total=INTEGER,
                    hasMore=BOOLEAN,
                )
            },
            auth=ADMIN,
            params=(
                param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                param("offset", {"type": "integer", "minimum": 0}),
                param("search", STRING, description="Part of the email (any case), or the id"),
            ),
        )
    }

    async def get(self) -> None:
        self.require_admin()
        limit = self.int_argument("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = self.int_argument("offset", 0, 0, 10**9)
        search = self.get_query_argument("search", "").strip()
        if len(search) > MAX_SEARCH:
            raise InvalidArgument(f"search: at most {MAX_SEARCH} characters")
        users, total = await self.auth.list_users(limit, offset, search)
        self.send(
            {
                "users": [admin_wire(u) for u in users],
                "total": total,
                "hasMore": offset + len(users) < total,
            }
        )


class AdminUserHandler(_AdminHandler):
    openapi = {
        "get": operation(
            "One user, with whether they are locked",
            "admin",
            {200: _ADMIN_USER},
            auth=ADMIN,
            params=(_USER_ID,),
        ),
        "patch": operation(
            "Set a user's role and claims; lock (ends every session) or unlock",
            "admin",
            {200: _ADMIN_USER},
            auth=ADMIN,
            params=(_USER_ID,),
            body=obj(role=STRING, claims=OBJECT, locked=BOOLEAN),
        ),
    }

    async def get(self, user_id: str) -> None:
        self.require_admin()
        user, lockout_until = await self.auth.user(user_id)
        self.send(admin_wire(user, lockout_until))

    async def patch(self, user_id: str) -> None:
        self.require_admin()
        body = self.json_object()
        unknown = set(body) - {"role", "claims", "locked"}
        if unknown:
            raise InvalidArgument(f"unknown keys {sorted(unknown)}; expected role, claims, locked")
        if not body:
            raise InvalidArgument("give role, claims, locked or several")
        locked = body.get("locked")
        if locked is not None and not isinstance(locked, bool):
            raise InvalidArgument("locked: must be true or false")
        role, claims = _role(body.get("role")), _claims(body.get("claims"))
        if role is not None or claims is not None:
            await self.auth.update_user(user_id, role, claims)
        if locked is not None:
            await self.auth.set_locked(user_id, locked)
        user, lockout_until = await self.auth.user(user_id)
        self.send(admin_wire(user, lockout_until))


class AdminUserMfaHandler(_AdminHandler):
    openapi = {
        "delete": operation(
            "Reset a user's MFA (they sign in with the password alone until they enroll again)",
            "admin",
            {200: _ADMIN_USER},
            auth=ADMIN,
            params=(_USER_ID,),
        )
    }

    async def delete(self, user_id: str) -> None:
        self.require_admin()
        await self.auth.reset_mfa(user_id)
        user, lockout_until = await self.auth.user(user_id)
        self.send(admin_wire(user, lockout_until))


class AdminSessionsHandler(_AdminHandler):
    openapi = {
        "get": operation(
            "A user's live sessions, with device and IP",
            "admin",
            {
                200: obj(
                    ("sessions",),
                    sessions=array(
                        obj(
                            ("id", "device", "ip", "lastUsedAt"),
                            id=STRING,
                            device=STRING,
                            ip=STRING,
                            lastUsedAt={**STRING, "format": "date-time"},
                        )
                    ),
                )
            },
            auth=ADMIN,
            params=(_USER_ID,),
        ),
        "delete": operation(
            "Revoke every session of a user (their sockets close)",
            "admin",
            {200: obj(("revoked",), revoked=INTEGER)},
            auth=ADMIN,
            params=(_USER_ID,),
        ),
    }

    async def get(self, user_id: str) -> None:
        self.require_admin()
        sessions = await self.auth.user_sessions(user_id)
        self.send(
            {
                "sessions": [
                    {"id": s.id, "device": s.device, "ip": s.ip, "lastUsedAt": iso(s.last_used_at)}
                    for s in sessions
                ]
            }
        )

    async def delete(self, user_id: str) -> None:
        self.require_admin()
        self.send({"revoked": await self.auth.revoke_user_sessions(user_id)})


class AdminSessionHandler(_AdminHandler):
    openapi = {
        "delete": operation(
            "Revoke one session of a user (its sockets close)",
            "admin",
            {204: None},
            auth=ADMIN,
            params=(_USER_ID, param("session_id", STRING, "path")),
        )
    }

    async def delete(self, user_id: str, session_id: str) -> None:
        self.require_admin()
        await self.auth.revoke_user_session(user_id, session_id)
        self.no_content()


def admin_wire(user: User, lockout_until: int = 0) -> dict[str, Any]:
    """The user as /me shows it, plus what an admin acts on: `locked` (by an admin,
    until unlocked) and `lockedUntil` (failed sign-ins' lockout, if one is running)."""
    wire = user_wire(user)
    wire["locked"] = user.locked_at is not None
    wire["lockedAt"] = None if user.locked_at is None else iso(user.locked_at)
    wire["lockedUntil"] = iso(lockout_until) if lockout_until > now_ms() else None
    return wire


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
