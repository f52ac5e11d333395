"""HTTP to the server: JSON in and out, errors as ActorbaseError, and the access token
kept fresh (refreshed before it expires and after a 401, one refresh in flight)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

from .errors import ActorbaseError, NetworkError
from .events import Listeners
from .tokens import Claims, Tokens, TokenStorage

BodyProducer = Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Any
    headers: dict[str, str]


class Http:
    """One server's HTTP API with this client's tokens. `request` retries once after a
    401 with a refreshed token; `refresh` runs at most once at a time, every caller
    awaiting the same attempt (the server invalidates a refresh token when it is used,
    so two concurrent refreshes would end the session)."""

    def __init__(self, url: str, storage: TokenStorage, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._storage = storage
        self._client = AsyncHTTPClient(force_instance=True, max_clients=64)
        self.tokens: Tokens | None = None
        self.claims: Claims | None = None
        self.token_changes: Listeners[Tokens | None] = Listeners()
        self._refreshing: asyncio.Task[Tokens] | None = None

    async def load(self) -> None:
        tokens = await self._storage.load()
        self._set(tokens)

    def close(self) -> None:
        self._client.close()

    # -- tokens -------------------------------------------------------------------------

    async def set_tokens(self, tokens: Tokens | None) -> None:
        self._set(tokens)
        if tokens is None:
            await self._storage.clear()
        else:
            await self._storage.save(tokens)

    def _set(self, tokens: Tokens | None) -> None:
        self.tokens = tokens
        self.claims = Claims.of(tokens.access_token) if tokens else None
        self.token_changes.emit(tokens)

    async def access_token(self) -> str | None:
        """The access token to send now: refreshed first if it is close to expiry (if
        that fails for the network, the current one is still worth a try)."""
        if self.tokens is None or self.claims is None:
            return None
        if time.time() >= self.claims.refresh_at():
            try:
                return (await self.refresh()).access_token
            except NetworkError:
                pass
        return self.tokens.access_token

    async def refresh(self, stale: str | None = None) -> Tokens:
        """New tokens from the refresh token. `stale`: the access token that was just
        refused; if the tokens already changed since, they are returned as they are."""
        if stale is not None and self.tokens and self.tokens.access_token != stale:
            return self.tokens
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh_once())
            self._refreshing.add_done_callback(self._refresh_done)
        return await asyncio.shield(self._refreshing)

    def _refresh_done(self, task: asyncio.Task[Tokens]) -> None:
        self._refreshing = None
        if not task.cancelled():
            task.exception()  # retrieved: each awaiting caller gets it raised

    async def _refresh_once(self) -> Tokens:
        before = self.tokens
        if before is None:
            raise ActorbaseError("UNAUTHENTICATED", "Not signed in", 401)
        try:
            response = await self.request(
                "POST",
                "/api/auth/refresh",
                json={"refreshToken": before.refresh_token},
                auth=False,
            )
        except ActorbaseError as exc:
            if exc.status == 401 and self.tokens == before:  # the session ended
                await self.set_tokens(None)
            raise
        tokens = Tokens.from_json(response.body)
        if tokens is None:
            raise ActorbaseError("INTERNAL", "Refresh answered without tokens", 500)
        if self.tokens != before:
            # Signed out, or in anew (maybe as another user), while it was on its way:
            # that stands; the refreshed session is not taken up.
            if self.tokens is None:
                raise ActorbaseError("UNAUTHENTICATED", "Not signed in", 401)
            return self.tokens
        await self.set_tokens(tokens)
        return tokens

    # -- requests -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body_producer: Callable[[], BodyProducer] | None = None,
        auth: bool = True,
    ) -> Response:
        """Send one request; 2xx → Response, else ActorbaseError (NetworkError when
        no answer came). `body_producer` makes a fresh streamed body per attempt."""
        token = await self.access_token() if auth else None
        user = Claims.of(token).user_id if token is not None else None  # whom it is sent as
        response = await self._send(method, path, json, params, headers, body_producer, token)
        if response.status == 401 and token is not None:
            try:
                token = (await self.refresh(stale=token)).access_token
            except ActorbaseError as exc:
                if exc.status != 401:
                    raise
            else:
                # Sent again only as the user it was sent as (when its token named one):
                # whoever signed in since must not inherit it, e.g. a queued write.
                if self.claims is not None and user in (None, self.claims.user_id):
                    response = await self._send(
                        method, path, json, params, headers, body_producer, token
                    )
        if response.status >= 400:
            raise ActorbaseError.from_wire(response.body, response.status)
        return response

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        body_producer: Callable[[], BodyProducer] | None,
        token: str | None,
    ) -> Response:
        url = self.url + path
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        all_headers = {"Accept": "application/json", **(headers or {})}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        data: bytes | None = None
        if body is not None:
            data = _dumps(body)
            all_headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH") and body_producer is None:
            data = b""
        request = HTTPRequest(
            url,
            method,
            headers=all_headers,
            body=data,
            body_producer=body_producer() if body_producer else None,
            connect_timeout=self.timeout,
            request_timeout=self.timeout,
            allow_nonstandard_methods=True,
            decompress_response=True,
        )
        try:
            raw = await self._client.fetch(request, raise_error=False)
        except (OSError, StreamClosedError, HTTPClientError) as exc:
            raise NetworkError(f"{method} {path}: {exc}") from exc
        if raw.code == 599:
            raise NetworkError(f"{method} {path}: {raw.error}")
        parsed: Any = None
        if raw.body:
            try:
                parsed = _loads(raw.body)
            except ValueError:
                parsed = None
        return Response(raw.code, parsed, dict(raw.headers.get_all()))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _loads(data: bytes) -> Any:
    return json.loads(data)
