"""The access log, without the secrets some URLs carry.

EventSource cannot send headers, so SSE takes the access token as `?token=`; Tornado's
own access log would write that token, valid for minutes, to every log it feeds. Here
the value of every query parameter whose name ends in "token" (any case, however
percent-encoded) is replaced before the line is written.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

import tornado.httputil
import tornado.web
from tornado.log import access_log

REDACTED = "[redacted]"


def redact(uri: str) -> str:
    """`uri` with the values of its token-like query parameters replaced."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        if eq and unquote_plus(name).lower().endswith("token"):
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


def summary(request: tornado.httputil.HTTPServerRequest) -> str:
    """Tornado's `_request_summary`, redacted: method, URI, client address."""
    return f"{request.method} {redact(request.uri or '')} ({request.remote_ip})"


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The Application's `log_function`: Tornado's line and levels, redacted."""
    status = handler.get_status()
    if status < 400:
        log = access_log.info
    elif status < 500:
        log = access_log.warning
    else:
        log = access_log.error
    ms = 1000.0 * handler.request.request_time()
    log("%d %s %.2fms", status, summary(handler.request), ms)
