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

Body framing Tornado's HTTP/1 reader refuses (a Content-Length that is not one whole
number, a Transfer-Encoding other than chunked, or both headers) would get its bare
`400 Bad Request` and a closed connection. For handlers that say they answer it
(`answers_framing_errors`, the JSON API's, uploads included), the handler runs at once
with no body and `framing_error(request)` set, answers 400 INVALID_ARGUMENT in the
seed's format (with its CORS, rate-limit and request-id headers), and once that answer
is sent the connection is detached from Tornado and closed: where the body ends is
unknown, so nothing after it on the connection may be read as a request. The others
(static files, the WebSocket handshake, CORS preflights) never run: the same 400 in
JSON is written on the connection, which then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import weakref
from collections.abc import Awaitable
from typing import Any

import tornado.web
import ujson
from tornado import httputil
from tornado.http1connection import DIGITS, is_transfer_encoding_chunked
from tornado.iostream import StreamClosedError

from actorbase.errors import InvalidArgument
from actorbase.logs import REQUEST_ID
from config.settings import Settings

_EXCEEDED: weakref.WeakSet[httputil.HTTPServerRequest] = weakref.WeakSet()
"""Requests whose body went over the limit (touched on the IOLoop only)."""
_UNBOUNDED = 2**62
"""Tornado's own limit, lifted for a wrapped request: `_BodyLimit` bounds it instead."""
_FRAMING: weakref.WeakKeyDictionary[
    httputil.HTTPServerRequest, tuple[str, asyncio.Future[None]]
] = weakref.WeakKeyDictionary()
"""Requests with refused framing → the message, and what Tornado waits on until the
handler has answered (IOLoop only)."""
_LIST = re.compile(r",[ \t]*")
"""How Tornado splits a repeated Content-Length (equal values are one length)."""


def largest_body(settings: Settings) -> int:
    """The largest body any route takes (an upload, with its form framing)."""
    return max(settings.max_body_bytes, settings.max_upload_bytes) + 64 * 1024


def exceeded(request: httputil.HTTPServerRequest) -> bool:
    """Whether `request`'s body went over the limit (it was dropped, not read)."""
    return request in _EXCEEDED


def framing_problem(headers: httputil.HTTPHeaders) -> str | None:
    """Why Tornado's HTTP/1 reader would refuse these headers' body framing, or None
    (its own checks: `is_transfer_encoding_chunked`, and Content-Length as it reads it)."""
    try:
        is_transfer_encoding_chunked(headers)
    except httputil.HTTPInputError:
        if "Content-Length" in headers:
            return "Content-Length and Transfer-Encoding may not both be sent"
        return "Transfer-Encoding must be chunked"
    declared = headers.get("Content-Length")
    if declared is None:
        return None
    pieces = _LIST.split(declared)
    if any(p != pieces[0] for p in pieces) or DIGITS.fullmatch(pieces[0]) is None:
        return "Content-Length must be one whole number of bytes"
    return None


def framing_error(request: httputil.HTTPServerRequest) -> str | None:
    """Why `request`'s framing was refused (its body was not read), or None."""
    if not _FRAMING:
        return None
    entry = _FRAMING.get(request)
    return None if entry is None else entry[0]


def answered(request: httputil.HTTPServerRequest) -> None:
    """The answer to a request with refused framing is sent (or its connection is
    gone): the connection closes, nothing more on it is read."""
    if not _FRAMING:
        return
    entry = _FRAMING.pop(request, None)
    if entry is not None and not entry[1].done():
        entry[1].set_result(None)


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
        answers = getattr(target_class, "answers_framing_errors", False)
        # Set by @tornado.web.stream_request_body: such a handler sees every chunk and
        # bounds the body itself (uploads); only refused framing is answered for it.
        if getattr(target_class, "_stream_request_body", False):
            return _FramingGuard(inner, request) if answers else inner
        return _BodyLimit(inner, request, self._limit, self._drain, answers)


def _refuse(request: httputil.HTTPServerRequest, problem: str) -> asyncio.Future[None]:
    """Note `request`'s refused framing; the future is set once it is answered."""
    waiter = asyncio.get_running_loop().create_future()
    _FRAMING[request] = (problem, waiter)
    return waiter


async def _close_after(request: httputil.HTTPServerRequest, answer: asyncio.Future[None]) -> None:
    """Tornado waits on this, reading nothing more, until the refusal is answered; it
    then finds its connection detached and closed."""
    await answer
    request.connection.detach().close()  # type: ignore[union-attr]


async def _refuse_plainly(
    request: httputil.HTTPServerRequest, problem: str, request_id: str | None
) -> None:
    """Refused framing for a handler that does not answer it: the seed's 400 written on
    the connection, detached from Tornado (which then reads nothing more), then closed.
    `request_id`: the request's (handlers.requestscope), echoed as on every response."""
    body = ujson.dumps(InvalidArgument(problem).to_wire(), escape_forward_slashes=False).encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n"
        + ("" if request_id is None else f"X-Request-Id: {request_id}\r\n")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    stream = request.connection.detach()  # type: ignore[union-attr]
    with contextlib.suppress(StreamClosedError):
        await stream.write(head.encode() + body)
    stream.close()


class _FramingGuard(httputil.HTTPMessageDelegate):
    """A streaming handler's delegate, passed through, but for body framing Tornado
    would refuse: the handler then starts with `framing_error(request)` set, answers
    it, and the connection closes, as with `_BodyLimit`."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, request: httputil.HTTPServerRequest):
        self._inner = inner
        self._request = request

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        problem = framing_problem(headers)
        if problem is None:
            return self._inner.headers_received(start_line, headers)
        waiter = _refuse(self._request, problem)
        self._inner.headers_received(start_line, headers)  # the handler starts: it answers
        return _close_after(self._request, waiter)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        self._inner.finish()

    def on_connection_close(self) -> None:
        answered(self._request)
        self._inner.on_connection_close()


class _BodyLimit(httputil.HTTPMessageDelegate):
    """Buffers the body up to `limit`; beyond it drops it and marks the request. The
    handler starts when the body has been read, or once past `drain` bytes."""

    def __init__(
        self,
        inner: httputil.HTTPMessageDelegate,
        request: httputil.HTTPServerRequest,
        limit: int,
        drain: int,
        answers_framing: bool,
    ) -> None:
        self._inner = inner
        self._request = request
        self._limit = limit
        self._drain = drain
        self._answers_framing = answers_framing
        self._body = bytearray()
        self._received = 0
        self._started = False

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        self._request.connection.set_max_body_size(_UNBOUNDED)  # type: ignore[union-attr]
        problem = framing_problem(headers)
        if problem is not None and not self._answers_framing:
            return _refuse_plainly(self._request, problem, REQUEST_ID.get())
        result = self._inner.headers_received(start_line, headers)
        if problem is not None:
            return self._refuse_framing(problem)
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
        answered(self._request)
        self._inner.on_connection_close()

    def _refuse_framing(self, problem: str) -> Awaitable[None]:
        """Run the handler now, bodiless, to answer `problem`."""
        waiter = _refuse(self._request, problem)
        self._start()
        return _close_after(self._request, waiter)

    def _start(self) -> None:
        """Hand the body (empty if over the limit) to the handler and run it, once."""
        if self._started:
            return
        self._started = True
        if self._body:
            self._inner.data_received(self._body)  # type: ignore[arg-type]
            self._body = bytearray()
        self._inner.finish()
