"""/api/auth/* and /.well-known/jwks.json: parse, call the accounts service, render.

The rules live in `store.auth_service`; these handlers only translate.
"""

from __future__ import annotations

import datetime
from typing import Any

from actorbase.errors import AccountLocked, PermissionDenied
from handlers.base import ApiHandler
from handlers.openapi import PUBLIC, STRING, array, obj, operation, param, ref
from handlers.useragent import device_label
from store.accounts import User
from store.auth_service import AuthService, Tokens
from store.principal import Principal


def iso(ms: int) -> str:
    """Auth timestamps on the wire: ISO-8601 UTC to the second, 2026-04-05T12:00:00Z."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def user_wire(user: User, full: bool = True) -> dict[str, Any]:
    """The seed's user object; `full` adds role, claims and mfaEnabled (as /me)."""
    if not full:
        return {"id": user.id, "email": user.email, "createdAt": iso(user.created_at)}
    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "claims": user.claims,
        "mfaEnabled": user.mfa_enabled,
        "createdAt": iso(user.created_at),
    }


class AuthHandler(ApiHandler):
    """Shared by the auth endpoints."""

    # Account changes act only for a session the database still holds live, even
    # one revoked a moment ago by another server process.
    fresh_session = True
    signed_in: str | None = None
    """The user whose tokens this response hands out (sign-up, sign-in, MFA verify,
    refresh): the access line's `user`, as no bearer token names one."""

    def send_tokens(self, tokens: Tokens, status: int = 200, **extra: Any) -> None:
        self.signed_in = tokens.user_id
        self.send({**extra, **tokens.to_wire()}, status=status)

    @property
    def auth(self) -> AuthService:
        return self.ctx.auth

    def user(self) -> Principal:
        """The signed-in user; the admin token is not a user and has no session."""
        principal = self.require_auth()
        if principal.is_admin or principal.session_id is None:
            raise PermissionDenied("This endpoint needs a user's access token")
        return principal

    def device(self) -> str:
        return device_label(self.request.headers.get("User-Agent"))

    def set_default_headers(self) -> None:
        # Tokens, MFA secrets and recovery codes must not be kept by any cache.
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")
        self.set_header("Pragma", "no-cache")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, AccountLocked):
            # Set here: send_error clears headers set before the raise.
            self.set_header("Retry-After", str(exc.retry_after))
        super().write_error(status_code, **kwargs)


_PASSWORD = obj(("password",), password=STRING)
_CODE = obj(("code", "password"), code=STRING, password=STRING)
_MFA_REQUIRED = obj(("mfaRequired", "mfaToken"), mfaRequired={"const": True}, mfaToken=STRING)


class SignupHandler(AuthHandler):
    rate_policy = "auth"
    openapi = {
        "post": operation(
            "Create an account and sign in",
            "auth",
            {
                201: obj(
                    ("user", "accessToken", "refreshToken"),
                    user=ref("User"),
                    accessToken=STRING,
                    refreshToken=STRING,
                )
            },
            auth=PUBLIC,
            body=ref("Credentials"),
        )
    }

    async def post(self) -> None:
        body = self.json_object()
        user, tokens = await self.auth.signup(
            body.get("email"), body.get("password"), self.device(), self.client_ip()
        )
        self.send_tokens(tokens, 201, user=user_wire(user, full=False))


class SigninHandler(AuthHandler):
    rate_policy = "auth"
    openapi = {
        "post": operation(
            "Sign in: tokens, or an mfaToken when MFA is on",
            "auth",
            {200: {"oneOf": [ref("Tokens"), _MFA_REQUIRED]}},
            auth=PUBLIC,
            body=ref("Credentials"),
        )
    }

    async def post(self) -> None:
        body = self.json_object()
        result = await self.auth.signin(
            body.get("email"), body.get("password"), self.device(), self.client_ip()
        )
        if isinstance(result, str):
            self.send({"mfaRequired": True, "mfaToken": result})
        else:
            self.send_tokens(result)


class MfaVerifyHandler(AuthHandler):
    rate_policy = "mfa"
    openapi = {
        "post": operation(
            "Second factor: a TOTP or recovery code for an mfaToken",
            "auth",
            {200: ref("Tokens")},
            auth=PUBLIC,
            body=obj(("mfaToken", "code"), mfaToken=STRING, code=STRING),
        )
    }

    async def post(self) -> None:
        body = self.json_object()
        tokens = await self.auth.verify_mfa(body.get("mfaToken"), body.get("code"))
        self.send_tokens(tokens)


class MfaEnrollHandler(AuthHandler):
    openapi = {
        "post": operation(
            "Start TOTP enrollment",
            "auth",
            {200: obj(("secret", "otpauthUrl"), secret=STRING, otpauthUrl=STRING)},
            body=_PASSWORD,
        )
    }

    async def post(self) -> None:
        principal = self.user()
        password = self.json_object().get("password")
        secret, url = await self.auth.enroll_mfa(principal, password)
        self.send({"secret": secret, "otpauthUrl": url})


class MfaEnableHandler(AuthHandler):
    openapi = {
        "post": operation(
            "Turn MFA on with a first code and the password; returns recovery codes and "
            "ends the other sessions",
            "auth",
            {
                200: obj(
                    ("mfaEnabled", "recoveryCodes"),
                    mfaEnabled={"const": True},
                    recoveryCodes=array(STRING),
                )
            },
            body=_CODE,
        )
    }

    async def post(self) -> None:
        principal = self.user()
        body = self.json_object()
        codes = await self.auth.enable_mfa(principal, body.get("code"), body.get("password"))
        self.send({"mfaEnabled": True, "recoveryCodes": codes})


class MfaDisableHandler(AuthHandler):
    openapi = {
        "post": operation(
            "Turn MFA off with a code and the password",
            "auth",
            {200: obj(("mfaEnabled",), mfaEnabled={"const": False})},
            body=_CODE,
        )
    }

    async def post(self) -> None:
        principal = self.user()
        body = self.json_object()
        await self.auth.disable_mfa(principal, body.get("code"), body.get("password"))
        self.send({"mfaEnabled": False})


class RefreshHandler(AuthHandler):
    openapi = {
        "post": operation(
            "New tokens for a refresh token (which dies)",
            "auth",
            {200: ref("Tokens")},
            auth=PUBLIC,
            body=obj(("refreshToken",), refreshToken=STRING),
        )
    }

    async def post(self) -> None:
        tokens = await self.auth.refresh(self.json_object().get("refreshToken"))
        self.send_tokens(tokens)


class MeHandler(AuthHandler):
    openapi = {"get": operation("The signed-in user", "auth", {200: ref("User")})}

    async def get(self) -> None:
        self.send(user_wire(await self.auth.me(self.user())))


class SignoutHandler(AuthHandler):
    openapi = {"post": operation("End this session", "auth", {204: None})}

    async def post(self) -> None:
        await self.auth.signout(self.user())
        self.no_content()


class SessionsHandler(AuthHandler):
    openapi = {
        "get": operation(
            "Your live sessions",
            "auth",
            {
                200: obj(
                    ("sessions",),
                    sessions=array(
                        obj(
                            ("id", "device", "ip", "lastUsedAt", "current"),
                            id=STRING,
                            device=STRING,
                            ip=STRING,
                            lastUsedAt={**STRING, "format": "date-time"},
                            current={"type": "boolean"},
                        )
                    ),
                )
            },
        )
    }

    async def get(self) -> None:
        principal = self.user()
        sessions = await self.auth.sessions(principal)
        self.send(
            {
                "sessions": [
                    {
                        "id": s.id,
                        "device": s.device,
                        "ip": s.ip,
                        "lastUsedAt": iso(s.last_used_at),
                        "current": s.id == principal.session_id,
                    }
                    for s in sessions
                ]
            }
        )


class SessionHandler(AuthHandler):
    openapi = {
        "delete": operation(
            "Revoke one of your sessions",
            "auth",
            {204: None},
            params=(param("session_id", STRING, "path"),),
        )
    }

    async def delete(self, session_id: str) -> None:
        await self.auth.revoke_session(self.user(), session_id)
        self.no_content()


class PasswordHandler(AuthHandler):
    openapi = {
        "post": operation(
            "Change your password (other sessions end)",
            "auth",
            {204: None},
            body=obj(
                ("currentPassword", "newPassword"), currentPassword=STRING, newPassword=STRING
            ),
        )
    }

    async def post(self) -> None:
        principal = self.user()
        body = self.json_object()
        await self.auth.change_password(
            principal, body.get("currentPassword"), body.get("newPassword")
        )
        self.no_content()


class JwksHandler(AuthHandler):
    """The public keys that verify access tokens, for other services."""

    openapi = {
        "get": operation(
            "Public keys (JWKS) that verify access tokens",
            "auth",
            {200: obj(("keys",), keys=array({"type": "object"}))},
            auth=PUBLIC,
        )
    }

    async def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.clear_header("Pragma")
        self.send(self.auth.jwks())
