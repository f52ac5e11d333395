"""CORS: which browser origins may call the API and open WebSockets (CORS_ORIGINS).

Preflights (OPTIONS with Origin and Access-Control-Request-Method) are answered by
`PreflightHandler` before any API handler runs, so they need no token and spend no
rate budget; it allows the methods the target route implements and the headers
Authorization and Content-Type. Actual responses get their Access-Control-* headers
from `handlers.base.ApiHandler`, which exposes the rate-limit headers to scripts.
The WebSocket handshake checks Origin against the same list. Clients that send no
Origin (servers, mobile apps, curl) are not browsers and are always let through:
bearer tokens, not cookies, authenticate here. A refused origin is logged (a warning
naming it, cut to 200 characters), so a misconfigured CORS_ORIGINS shows in the log.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import tornado.httputil
import tornado.routing
import tornado.web
import ujson

from actorbase.context import Context
from actorbase.errors import ApiError, NotFound, PermissionDenied
from actorbase.logs import bounded, fields

ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key"
EXPOSED_HEADERS = (
    "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, X-Request-ID, "
    "Idempotent-Replayed"
)
MAX_AGE = 600
"""Seconds a browser may cache a preflight answer."""

logger = logging.getLogger(__name__)


def origin_allowed(origins: frozenset[str], origin: str) -> bool:
    """Whether `origin` is in the configured list (`*` allows any)."""
    return "*" in origins or origin.rstrip("/").lower() in origins


def websocket_origin_allowed(origins: frozenset[str], origin: str, host: str) -> bool:
    """A page served by this server (same host) or a listed origin may connect."""
    return urlsplit(origin).netloc.lower() == host.lower() or origin_allowed(origins, origin)


def log_refused(origin: str, channel: str) -> None:
    """A warning naming the refused origin (client-given: cut, and escaped by the
    log formatter) and what it tried ("preflight", "websocket" or "request")."""
    origin = bounded(origin)
    logger.warning(
        "CORS: origin %s refused (%s); allowed: CORS_ORIGINS",
        origin,
        channel,
        extra=fields({"origin": origin, "channel": channel}, ("origin", "channel")),
    )


def log_if_refused(request: tornado.httputil.HTTPServerRequest, origins: frozenset[str]) -> None:
    """After an actual request (not a preflight or a WebSocket handshake, which log
    their own refusals) from a browser page on an origin not allowed: the answer had
    no Access-Control-Allow-Origin, so the browser withheld it from the page. Such
    requests need no preflight: an EventSource (SSE) stream, a fetch of a signed file
    URL. A page served by this server itself (same host) is not cross-origin."""
    origin = request.headers.get("Origin")
    if (
        not origin
        or request.method == "OPTIONS"
        or request.headers.get("Upgrade", "").lower() == "websocket"
        or origin_allowed(origins, origin)
        or urlsplit(origin).netloc.lower() == request.host.lower()
    ):
        return
    log_refused(origin, "request")


def handler_methods(cls: type[tornado.web.RequestHandler]) -> list[str]:
    """The HTTP methods `cls` implements, upper-case, in Tornado's order."""
    base = tornado.web.RequestHandler
    return [
        m
        for m in cls.SUPPORTED_METHODS
        if m != "OPTIONS" and getattr(cls, m.lower(), None) is not getattr(base, m.lower())
    ]


class Preflight(tornado.routing.Matcher):
    """Matches CORS preflight requests, whatever the path."""

    def match(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any] | None:
        headers = request.headers
        if (
            request.method == "OPTIONS"
            and "Origin" in headers
            and "Access-Control-Request-Method" in headers
        ):
            return {}
        return None


class PreflightHandler(tornado.web.RequestHandler):
    """204 with the Access-Control-Allow-* headers for a listed origin; 403 for an
    origin not listed or a method the route lacks; 404 for a path with no route."""

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx

    def options(self) -> None:
        origin = self.request.headers["Origin"]
        self.set_header("Vary", "Origin")
        if not origin_allowed(self.ctx.settings.cors_origins, origin):
            log_refused(origin, "preflight")
            raise PermissionDenied(f"Origin {origin} is not allowed (CORS_ORIGINS)")
        methods = self._route_methods()
        if methods is None:
            raise NotFound(f"No route for {self.request.path}")
        wanted = self.request.headers["Access-Control-Request-Method"].strip().upper()
        if wanted not in methods:
            raise PermissionDenied(f"{wanted} is not allowed on {self.request.path}")
        self.set_header("Access-Control-Allow-Origin", origin)
        self.set_header("Access-Control-Allow-Methods", ", ".join(methods))
        self.set_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
        self.set_header("Access-Control-Max-Age", str(MAX_AGE))
        self.set_status(204)
        self.finish()

    def _route_methods(self) -> list[str] | None:
        for rule in self.application.wildcard_router.rules:
            matcher = rule.matcher
            if (
                isinstance(matcher, tornado.routing.PathMatches)
                and matcher.match(self.request) is not None
            ):
                return handler_methods(rule.target)
        return None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if not isinstance(exc, ApiError):
            exc = ApiError()
        self.set_status(exc.status)
        self.set_header("Vary", "Origin")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(ujson.dumps(exc.to_wire(), escape_forward_slashes=False))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, ApiError):
            super().log_exception(typ, value, tb)
