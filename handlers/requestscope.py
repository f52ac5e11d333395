"""Every request runs in a scope: its id, echoed as X-Request-ID, on every line about it.

The id comes from the request's `X-Request-ID` when that is a sane one (1-128
characters of letters, digits and `-_.:+/=`, what proxies and Heroku's router send),
else a new short random one. `Application` wraps each handler's message delegate so
that Tornado's calls into it (and so the handler's task, which copies the context
when it starts) run with `actorbase.logs.REQUEST_ID` set; the value is reset after
each call, so nothing between requests on a keep-alive connection inherits it. The
`RequestIdHeader` transform puts the id on every response a handler writes: errors,
404s, preflights, static files, SSE streams and the WebSocket upgrade.
It also names each handler's route pattern for the access log (`route_of`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import tornado.routing
import tornado.web
from tornado import httputil

from actorbase.logs import REQUEST_ID
from handlers import bodylimit
from store import entropy

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9_.:+/=-]{1,128}")
_GROUP = re.compile(r"\((?:[^()]|\([^()]*\))*\)")
T = TypeVar("T")


def request_id(given: str | None) -> str:
    """The client's id if it is safe to echo and log, else a new one."""
    if given is not None and _VALID.fullmatch(given):
        return given
    return entropy.token_hex(8)


def route_label(matcher: tornado.routing.Matcher) -> str:
    """A route as operators read it: its pattern with each group as `*`."""
    if isinstance(matcher, tornado.routing.PathMatches):
        pattern = matcher.regex.pattern.removeprefix("^").removesuffix("$")
        return _GROUP.sub("*", pattern).replace("/?", "")
    return type(matcher).__name__.lower()


class Application(bodylimit.Application):
    """The route table's Application: each request in its scope (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_transform(RequestIdHeader)
        self._routes = {
            rule.target: route_label(rule.matcher) for rule in self.wildcard_router.rules
        }

    def route_of(self, handler: tornado.web.RequestHandler) -> str | None:
        """The pattern of the route that matched, None for the default (404) handler."""
        return self._routes.get(type(handler))

    def get_handler_delegate(  # type: ignore[override]
        self,
        request: httputil.HTTPServerRequest,
        target_class: type[tornado.web.RequestHandler],
        target_kwargs: dict[str, Any] | None = None,
        path_args: list[bytes] | None = None,
        path_kwargs: dict[str, bytes] | None = None,
    ) -> httputil.HTTPMessageDelegate:
        inner = super().get_handler_delegate(
            request, target_class, target_kwargs, path_args, path_kwargs
        )
        return _Scoped(inner, request_id(request.headers.get(HEADER)))


class _Scoped(httputil.HTTPMessageDelegate):
    """Runs each call into `inner` with REQUEST_ID set to this request's id."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, rid: str) -> None:
        self._inner = inner
        self._rid = rid

    def _in_scope(self, call: Callable[..., T], *args: Any) -> T:
        token = REQUEST_ID.set(self._rid)
        try:
            return call(*args)
        finally:
            REQUEST_ID.reset(token)

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        return self._in_scope(self._inner.headers_received, start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self._in_scope(self._inner.data_received, chunk)

    def finish(self) -> None:
        self._in_scope(self._inner.finish)

    def on_connection_close(self) -> None:
        self._in_scope(self._inner.on_connection_close)


class RequestIdHeader(tornado.web.OutputTransform):
    """Adds X-Request-ID to a response's headers (made while the request's scope is
    current, so it knows the id)."""

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        self._rid = REQUEST_ID.get()

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        if self._rid is not None:
            headers[HEADER] = self._rid
        return status_code, headers, chunk
