"""The access log: one line per HTTP response, with who and which route, no secrets.

EventSource cannot send headers, so SSE takes the access token as `?token=`, and a
local signed file URL carries its signature as `?s=`: Tornado's own access log would
write those credentials to every log it feeds. Here every token-like or signature
parameter is redacted (actorbase.logs.redact). The line names the caller (the user
id, `admin` for the admin token, never the token) and the route pattern that matched,
so requests to one endpoint can be counted whatever their ids; its request id comes
from the request's scope (handlers.requestscope).
"""

from __future__ import annotations

import logging

import tornado.httputil
import tornado.web
from tornado.log import access_log

from actorbase.logs import fields, redact
from handlers import cors

_INLINE = ("status", "method", "path", "duration_ms")
"""Fields the text line already says in its message."""


def summary(request: tornado.httputil.HTTPServerRequest) -> str:
    """Tornado's `_request_summary`, redacted: method, URI, client address."""
    return f"{request.method} {redact(request.uri or '')} ({request.remote_ip})"


def client_ip(request: tornado.httputil.HTTPServerRequest, trust_proxy: bool) -> str:
    """The peer address, or the last proxy-added X-Forwarded-For hop when
    TRUST_PROXY is on (Heroku's router appends the real client last)."""
    if trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1]
    return request.remote_ip or "unknown"


def user_of(handler: tornado.web.RequestHandler) -> str | None:
    """The authenticated caller: a user id, `admin`, or None; for a sign-up, sign-in,
    MFA verify or refresh, the user it handed tokens to (handlers.auth)."""
    principal = getattr(handler, "principal", None)
    if principal is None:
        return getattr(handler, "signed_in", None)
    return "admin" if principal.is_admin else principal.user_id


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The Application's `log_function`: Tornado's levels (info, warning for 4xx,
    error for 5xx), its `status method uri duration` message, and the fields."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    ctx = getattr(handler, "ctx", None)  # the static files' handler has none
    if ctx is not None:
        cors.log_if_refused(request, ctx.settings.cors_origins)
    if not access_log.isEnabledFor(level):
        return  # LOG_LEVEL above it: the line would be dropped, so it is not built
    ms = round(1000.0 * request.request_time(), 2)
    path = redact(request.uri or "")
    route_of = getattr(handler.application, "route_of", None)
    values = {
        "status": status,
        "method": request.method,
        "path": path,
        "route": route_of(handler) if route_of is not None else None,
        "duration_ms": ms,
        "user": user_of(handler),
        "remote_ip": client_ip(request, ctx is not None and ctx.settings.trust_proxy),
    }
    access_log.log(
        level, "%d %s %s %.2fms", status, request.method, path, ms, extra=fields(values, _INLINE)
    )
