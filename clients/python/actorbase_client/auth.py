"""Accounts: sign-up, sign-in with MFA, refresh, sign-out, sessions; `user` kept
current and announced to `on_change` listeners."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import ActorbaseError
from .events import Listeners
from .http import Http
from .tokens import Tokens


class Auth:
    def __init__(self, http: Http) -> None:
        self._http = http
        self.user: dict[str, Any] | None = None
        self._changes: Listeners[dict[str, Any] | None] = Listeners()
        http.token_changes.add(self._on_tokens)

    def _on_tokens(self, tokens: Tokens | None) -> None:
        if tokens is None and self.user is not None:  # a refresh found the session over
            self._set_user(None)

    def on_change(self, callback: Callable[[dict[str, Any] | None], object]) -> Callable[[], None]:
        """Called with the user on every sign-in and with None on sign-out (or when the
        session ends); returns the function that unregisters it."""
        return self._changes.add(callback)

    async def restore(self) -> None:
        """Sign in again from stored tokens (a previous run's), if they still work."""
        if self._http.tokens is None:
            return
        try:
            await self._load_user()
        except ActorbaseError as exc:
            if exc.status == 401:
                await self._http.set_tokens(None)
            elif not exc.transient:
                raise

    async def sign_up(self, email: str, password: str) -> dict[str, Any]:
        """→ {"user"}; the new account is signed in."""
        body = await self._post("/api/auth/signup", {"email": email, "password": password})
        await self._signed_in(body)
        return {"user": self.user}

    async def sign_in(self, email: str, password: str) -> dict[str, Any]:
        """→ {"user"}, or {"mfaRequired": True, "challenge"} to pass to `verify_mfa`."""
        body = await self._post("/api/auth/signin", {"email": email, "password": password})
        if body.get("mfaRequired"):
            return {"mfaRequired": True, "challenge": body["mfaToken"]}
        await self._signed_in(body)
        return {"user": self.user}

    async def verify_mfa(self, challenge: str, code: str) -> dict[str, Any]:
        """Complete an MFA sign-in with a TOTP or recovery code → {"user"}."""
        body = await self._post("/api/auth/mfa/verify", {"mfaToken": challenge, "code": code})
        await self._signed_in(body)
        return {"user": self.user}

    async def refresh(self) -> None:
        """New tokens now (the client also does this by itself before expiry)."""
        await self._http.refresh()

    async def sign_out(self) -> None:
        """End this session on the server (if reachable) and forget the tokens."""
        try:
            if self._http.tokens is not None:
                await self._http.request("POST", "/api/auth/signout")
        except ActorbaseError as exc:
            if not exc.transient and exc.status != 401:
                raise
        finally:
            await self._http.set_tokens(None)
            self._set_user(None)

    async def me(self) -> dict[str, Any]:
        """The signed-in user as the server has it now (role, claims, mfaEnabled)."""
        return await self._load_user()

    async def sessions(self) -> list[dict[str, Any]]:
        response = await self._http.request("GET", "/api/auth/sessions")
        return list(response.body["sessions"])

    async def revoke_session(self, session_id: str) -> None:
        await self._http.request("DELETE", f"/api/auth/sessions/{session_id}")

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._http.request("POST", path, json=body, auth=False)
        return dict(response.body)

    async def _signed_in(self, body: dict[str, Any]) -> None:
        tokens = Tokens.from_json(body)
        if tokens is None:
            raise ActorbaseError("INTERNAL", "Sign-in answered without tokens", 500)
        await self._http.set_tokens(tokens)
        if isinstance(body.get("user"), dict):
            self._set_user(body["user"])
        else:
            await self._load_user()

    async def _load_user(self) -> dict[str, Any]:
        response = await self._http.request("GET", "/api/auth/me")
        self._set_user(dict(response.body))
        return dict(response.body)

    def _set_user(self, user: dict[str, Any] | None) -> None:
        before = self.user.get("id") if self.user else None
        self.user = user
        if before != (user.get("id") if user else None):  # signed in, out, or as another
            self._changes.emit(user)
