"""The base every API handler shares: JSON in and out, errors, auth, rate limits.

Handlers raise `actorbase.errors.ApiError`; `write_error` is the one place that
renders them. Anything else becomes INTERNAL with a generic message; its traceback
goes to the log only.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import tornado.web
import ujson

from actorbase.context import Context
from actorbase.errors import (
    ApiError,
    Internal,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
)
from handlers.ratelimit import Verdict
from store.principal import ADMIN, Principal

logger = logging.getLogger(__name__)

_HTTP_ERRORS: dict[int, type[ApiError]] = {400: InvalidArgument, 404: NotFound, 405: NotFound}
"""Tornado's own errors, in the seed's codes (a method an endpoint lacks is NOT_FOUND)."""


class ApiHandler(tornado.web.RequestHandler):
    """JSON API handler with the wire conventions of DESIGN.md."""

    ctx: Context
    principal: Principal | None = None

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx

    async def prepare(self) -> None:
        self.ctx.http_inflight += 1
        self._counted = True
        try:
            self.principal = await self.authenticate()
        except Unauthenticated:
            self._limit()  # a bad token still spends the address's budget
            raise
        self._limit()
        self._check_body_size()

    def _limit(self) -> None:
        self._verdict = verdict = self.ctx.limiter.take(self._rate_key())
        self.set_default_headers()
        if verdict.retry_after is not None:
            raise RateLimited(verdict.retry_after)

    def set_default_headers(self) -> None:
        """Rate-limit headers survive `send_error`, which clears the others."""
        verdict: Verdict | None = getattr(self, "_verdict", None)
        if verdict is None:
            return
        self.set_header("X-RateLimit-Limit", str(verdict.limit))
        self.set_header("X-RateLimit-Remaining", str(verdict.remaining))
        self.set_header("X-RateLimit-Reset", str(verdict.reset))
        if verdict.retry_after is not None:
            self.set_header("Retry-After", str(verdict.retry_after))

    def on_finish(self) -> None:
        if getattr(self, "_counted", False):
            self.ctx.http_inflight -= 1
            self._counted = False

    def _rate_key(self) -> str:
        if self.principal is not None:
            return "admin" if self.principal.is_admin else f"u:{self.principal.user_id}"
        return f"ip:{self.client_ip()}"

    def client_ip(self) -> str:
        """The peer address, or the last proxy-added X-Forwarded-For hop when
        TRUST_PROXY is on (Heroku's router appends the real client last)."""
        if self.ctx.settings.trust_proxy:
            forwarded = self.request.headers.get("X-Forwarded-For", "")
            hops = [h.strip() for h in forwarded.split(",") if h.strip()]
            if hops:
                return hops[-1]
        return self.request.remote_ip or "unknown"

    def _check_body_size(self) -> None:
        limit = self.ctx.settings.max_body_bytes
        declared = self.request.headers.get("Content-Length")
        if (declared and declared.isdigit() and int(declared) > limit) or len(
            self.request.body
        ) > limit:
            raise PayloadTooLarge(f"Request body exceeds {limit} bytes")

    # -- authentication ---------------------------------------------------------------

    def bearer(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    async def authenticate(self) -> Principal | None:
        """Who sent the request, or None. A bad token raises UNAUTHENTICATED."""
        token = self.bearer()
        if token is None:
            return None
        if hmac.compare_digest(token.encode(), self.ctx.admin_token.encode()):
            return ADMIN
        verifier = self.ctx.extras.get("verify_token")
        if verifier is None:
            raise Unauthenticated("Invalid token")
        return await verifier(token)

    def require_auth(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated("Missing bearer token")
        return self.principal

    # -- JSON in and out --------------------------------------------------------------

    def json_body(self) -> Any:
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise InvalidArgument("Content-Type must be application/json")
        try:
            return ujson.loads(self.request.body or b"")
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument("Request body is not valid JSON") from None

    def json_object(self) -> dict[str, Any]:
        body = self.json_body()
        if not isinstance(body, dict):
            raise InvalidArgument("Request body must be a JSON object")
        return body

    def send(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(ujson.dumps(body, ensure_ascii=False, escape_forward_slashes=False))

    def no_content(self) -> None:
        self.set_status(204)
        self.finish()

    # -- errors -----------------------------------------------------------------------

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if not isinstance(exc, ApiError):
            if isinstance(exc, tornado.web.HTTPError) and exc.status_code < 500:
                error_cls = _HTTP_ERRORS.get(exc.status_code, InvalidArgument)
                exc = error_cls(exc.log_message or self._reason)
            else:
                exc = Internal()
        self.set_status(exc.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(ujson.dumps(exc.to_wire(), ensure_ascii=False, escape_forward_slashes=False))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError) and not isinstance(value, Internal):
            return
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return
        logger.error("Uncaught exception %s", self._request_summary(), exc_info=(typ, value, tb))


class NotFoundHandler(ApiHandler):
    """Every unknown route: 404 NOT_FOUND in the seed's format."""

    async def prepare(self) -> None:
        await super().prepare()
        raise NotFound(f"No route for {self.request.method} {self.request.path}")
