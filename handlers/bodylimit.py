"""Bodies over MAX_BODY_BYTES: a 413 in the seed's format, never held in memory.

Tornado reads a whole body before a (non-streaming) handler runs, and past the server's
`max_body_size` it answers a bare `400 Bad Request` itself, before any handler. So
`Application` wraps every such handler's delegate in `_BodyLimit`, which counts the
bytes as they arrive (Content-Length or chunked alike): past the limit they are
dropped, and the handler runs with an empty body and `exceeded(request)` true, so its
`prepare` answers 413 PAYLOAD_TOO_LARGE after the usual authentication and rate
limiting, headers included. A client still sending gets the answer only if its body is
read, else the close resets the connection and loses it; so the rest is read and
dropped, up to `largest_body` (what an upload may send anyway). Beyond that the 413 is
sent at once and the connection closed. Streaming handlers (uploads) bound their own.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable
from typing import Any

import tornado.web
from tornado import httputil

from config.settings import Settings

_EXCEEDED: weakref.WeakSet[httputil.HTTPServerRequest] = weakref.WeakSet()
"""Requests whose body went over the limit (touched on the IOLoop only)."""
_UNBOUNDED = 2**62
"""Tornado's own limit, lifted for a wrapped request: `_BodyLimit` bounds it instead."""


def largest_body(settings: Settings) -> int:
    """The largest body any route takes (an upload, with its form framing)."""
    return max(settings.max_body_bytes, settings.max_upload_bytes) + 64 * 1024


def exceeded(request: httputil.HTTPServerRequest) -> bool:
    """Whether `request`'s body went over the limit (it was dropped, not read)."""
    return request in _EXCEEDED


class Application(tornado.web.Application):
    """`tornado.web.Application` whose buffered request bodies are bounded by `limit`,
    read and dropped beyond it up to `drain` bytes."""

    def __init__(self, *args: Any, limit: int, drain: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limit = limit
        self._drain = drain

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
        # Set by @tornado.web.stream_request_body: such a handler sees every chunk.
        if getattr(target_class, "_stream_request_body", False):
            return inner
        return _BodyLimit(inner, request, self._limit, self._drain)


class _BodyLimit(httputil.HTTPMessageDelegate):
    """Buffers the body up to `limit`; beyond it drops it and marks the request. The
    handler starts when the body has been read, or once past `drain` bytes."""

    def __init__(
        self,
        inner: httputil.HTTPMessageDelegate,
        request: httputil.HTTPServerRequest,
        limit: int,
        drain: int,
    ) -> None:
        self._inner = inner
        self._request = request
        self._limit = limit
        self._drain = drain
        self._body = bytearray()
        self._received = 0
        self._started = False

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        self._request.connection.set_max_body_size(_UNBOUNDED)  # type: ignore[union-attr]
        result = self._inner.headers_received(start_line, headers)
        declared = headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._limit:
            _EXCEEDED.add(self._request)
            if int(declared) > self._drain:
                self._start()  # not worth reading: answer now, close after
        return result

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        self._received += len(chunk)
        if self._received > self._limit and self._request not in _EXCEEDED:
            _EXCEEDED.add(self._request)
            self._body = bytearray()
        if self._request in _EXCEEDED:
            if self._received > self._drain:
                self._start()
            return None
        self._body += chunk
        return None

    def finish(self) -> None:
        self._start()

    def on_connection_close(self) -> None:
        self._inner.on_connection_close()

    def _start(self) -> None:
        """Hand the body (empty if over the limit) to the handler and run it, once."""
        if self._started:
            return
        self._started = True
        if self._body:
            self._inner.data_received(self._body)  # type: ignore[arg-type]
            self._body = bytearray()
        self._inner.finish()
