"""The base every API handler shares: JSON in and out, errors, auth, rate limits.

Handlers raise `actorbase.errors.ApiError`; `write_error` is the one place that
renders them. Anything else becomes INTERNAL with a generic message; its traceback
goes to the log only.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import time
import unicodedata
from typing import TYPE_CHECKING, Any, ClassVar

import tornado
import tornado.web
import ujson
from tornado import httputil

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
from handlers import accesslog, bodylimit, cors, jsonwire
from handlers.ratelimit import POLICIES, Verdict
from store.principal import ADMIN, Principal

if TYPE_CHECKING:
    from store.rules import RuleSet

logger = logging.getLogger(__name__)

_HTTP_ERRORS: dict[int, type[ApiError]] = {400: InvalidArgument, 404: NotFound, 405: NotFound}
"""Tornado's own errors, in the seed's codes (a method an endpoint lacks is NOT_FOUND)."""


async def principal_for_token(ctx: Context, token: str, *, fresh: bool = False) -> Principal:
    """The admin for the admin token, else the user of a live access token; raises
    UNAUTHENTICATED. Shared by HTTP, WebSocket `auth` and SSE. Session liveness comes
    from the process's SessionCache (current within SESSION_CHECK_INTERVAL for
    revocations by other processes); `fresh` reads it from the database."""
    if hmac.compare_digest(token.encode(), ctx.admin_token.encode()):
        return ADMIN
    principal = await ctx.auth.verify(token, fresh=fresh)
    if principal.user_id is not None:
        ctx.stats.active_today.seen(principal.user_id)
    # The app's rules travel with the caller, to every channel and to the transactor.
    return _with_rules(principal, ctx.app.rules)


_BOUND: dict[int, tuple[Principal, RuleSet | None, Principal]] = {}
"""id(verified principal) → (it, the rules, it with the rules): the token cache hands
out one Principal per token, so a request needs no copy of its own (IOLoop only)."""
_BOUND_MAX = 4096


def _with_rules(principal: Principal, rules: RuleSet | None) -> Principal:
    """`principal` carrying `rules`, made once per verified principal."""
    entry = _BOUND.get(id(principal))
    # The entry holds `principal`, so its id cannot be reused while it is kept.
    if entry is not None and entry[0] is principal and entry[1] is rules:
        return entry[2]
    bound = dataclasses.replace(principal, rules=rules)
    if len(_BOUND) >= _BOUND_MAX:
        _BOUND.clear()
    _BOUND[id(principal)] = (principal, rules, bound)
    return bound


_SERVER = f"TornadoServer/{tornado.version}"
_date_second = -1
_date_text = ""


def _http_date() -> str:
    """The `Date` header value Tornado writes, formatted once a second."""
    global _date_second, _date_text
    now = time.time()
    second = int(now)
    if second != _date_second:
        _date_text = httputil.format_timestamp(second)
        _date_second = second
    return _date_text


_UNDECODED = object()


class ApiHandler(tornado.web.RequestHandler):
    """JSON API handler with the wire conventions of DESIGN.md."""

    ctx: Context
    principal: Principal | None = None
    _decoded: Any = _UNDECODED
    rate_policy: ClassVar[str] = "api"
    """The budgets a request spends: a key of handlers.ratelimit.POLICIES."""
    fresh_session: ClassVar[bool] = False
    """Read the token's session from the database rather than the SessionCache."""
    answers_framing_errors: ClassVar[bool] = True
    """Refused body framing is answered here (handlers.bodylimit); `finish` says when."""

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
        self._check_arguments()

    def clear(self) -> None:
        """Tornado's `clear`, with the `Date` value formatted once a second rather than
        once a request (the same text either way)."""
        self._headers = httputil.HTTPHeaders(
            {"Server": _SERVER, "Content-Type": "text/html; charset=UTF-8", "Date": _http_date()}
        )
        self.set_default_headers()
        self._write_buffer: list[bytes] = []
        self._status_code = 200
        self._reason = httputil.responses[200]

    def _limit(self) -> None:
        self._verdict = verdict = self.ctx.limiter.take(self._rate_spends())
        self.set_default_headers()
        if verdict.retry_after is not None:
            raise RateLimited(verdict.retry_after)

    def _rate_spends(self) -> list[tuple[str, str]]:
        """(bucket, key) for each bucket of this handler's policy; a key taken from a
        body field falls back to the caller's when the field is missing."""
        spends = []
        for bucket, keyed_by in POLICIES[self.rate_policy]:
            if keyed_by == "caller":
                key = self._rate_key()
            elif keyed_by == "ip":
                key = f"ip:{self.client_ip()}"
            else:
                key = self._body_key(keyed_by) or self._rate_key()
            spends.append((bucket, key))
        return spends

    def _body_key(self, field: str) -> str | None:
        """A string field of a JSON body, lowercased and capped, or None."""
        try:
            value = self.json_body().get(field)
        except (InvalidArgument, AttributeError):
            return None
        if not isinstance(value, str):
            return None
        # As the accounts service reads an email: NFKC, then lowercase.
        return f"{field}:{unicodedata.normalize('NFKC', value).strip().lower()[:320]}"

    def set_default_headers(self) -> None:
        """Rate-limit, CORS and nosniff headers survive `send_error`, which clears the
        others."""
        # Every body here is JSON (or an event stream): never let a browser guess HTML.
        self.set_header("X-Content-Type-Options", "nosniff")
        self._cors_headers()
        verdict: Verdict | None = getattr(self, "_verdict", None)
        if verdict is None:
            return
        # Whole numbers: Tornado writes them as str() without its header-value check.
        self.set_header("X-RateLimit-Limit", verdict.limit)
        self.set_header("X-RateLimit-Remaining", verdict.remaining)
        self.set_header("X-RateLimit-Reset", verdict.reset)
        if verdict.retry_after is not None:
            self.set_header("Retry-After", verdict.retry_after)

    def _cors_headers(self) -> None:
        ctx: Context | None = getattr(self, "ctx", None)  # unset during __init__
        if ctx is None or not ctx.settings.cors_origins:
            return
        self.set_header("Vary", "Origin")
        origin = self.request.headers.get("Origin")
        if origin and cors.origin_allowed(ctx.settings.cors_origins, origin):
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers", cors.EXPOSED_HEADERS)

    def finish(self, chunk: Any = None) -> Any:
        refused = bodylimit.framing_error(self.request) is not None
        if (self.ctx.shutting_down or refused) and not self._headers_written:
            # Stopping: the client sends no further request on this connection, so the
            # requests in flight run out (the listening socket is closed already).
            # Refused framing: the connection closes after this answer.
            self.set_header("Connection", "close")
        sent = super().finish(chunk)
        if refused:
            sent.add_done_callback(lambda _: bodylimit.answered(self.request))
        return sent

    def on_finish(self) -> None:
        self.uncount()

    def uncount(self) -> None:
        """This request is over: no longer in flight (health, /metrics, and what a
        stopping server waits for). Once, however it ended: `on_finish`, or a handler
        whose client went away with nothing left to do (it never finishes)."""
        if getattr(self, "_counted", False):
            self.ctx.http_inflight -= 1
            self._counted = False

    def _rate_key(self) -> str:
        if self.principal is not None:
            return "admin" if self.principal.is_admin else f"u:{self.principal.user_id}"
        return f"ip:{self.client_ip()}"

    def client_ip(self) -> str:
        return accesslog.client_ip(self.request, self.ctx.settings.trust_proxy)

    def _check_body_size(self) -> None:
        """A body over MAX_BODY_BYTES was dropped as it arrived, one with refused
        framing was not read (`handlers.bodylimit`)."""
        problem = bodylimit.framing_error(self.request)
        if problem is not None:
            raise InvalidArgument(problem)
        if bodylimit.exceeded(self.request):
            raise PayloadTooLarge(f"Request body exceeds {self.ctx.settings.max_body_bytes} bytes")

    def _check_arguments(self) -> None:
        """NUL in a path or query argument (`%00` included, decoded by now) is refused
        here for every route: no name, id, path or cursor may hold one, and PostgreSQL's
        text cannot."""
        query = self.request.query_arguments
        if (
            any("\x00" in arg for arg in [*self.path_args, *self.path_kwargs.values()])
            or any("\x00" in key for key in query)
            or any(b"\x00" in value for values in query.values() for value in values)
        ):
            raise InvalidArgument("Path and query arguments may not contain NUL")

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
        return await principal_for_token(self.ctx, token, fresh=self.fresh_session)

    def require_auth(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated("Missing bearer token")
        return self.principal

    def int_argument(self, name: str, default: int, lo: int, hi: int) -> int:
        """A whole-number query argument within [lo, hi], else 400 naming it."""
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        if not (raw.isascii() and raw.lstrip("-").isdigit()) or not lo <= int(raw) <= hi:
            raise InvalidArgument(f"{name}: must be a whole number from {lo} to {hi}, got {raw!r}")
        return int(raw)

    # -- JSON in and out --------------------------------------------------------------

    def json_body(self) -> Any:
        """The decoded body, parsed once per request (a rate policy keyed by a body
        field reads it before the handler does)."""
        if self._decoded is _UNDECODED:
            content_type = self.request.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip().lower() != "application/json":
                raise InvalidArgument("Content-Type must be application/json")
            self._decoded = jsonwire.decode(self.request.body or b"", "Request body")
        return self._decoded

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

    def _request_summary(self) -> str:
        return accesslog.summary(self.request)  # no ?token= in error logs either

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
