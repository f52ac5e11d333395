"""WebSocket upgrades to /ws answered before routing: the short accept path.

A plain, valid handshake (GET /ws, `Upgrade: websocket`, `Connection: upgrade`,
version 13, a key, a Host, no body, an Origin that handlers.cors allows) is answered
here, as soon as its headers are parsed: the 101 goes out in one send, and the
stream becomes a `handlers.ws.Session` speaking Tornado's frame protocol
(`WebSocketProtocol13`). No RequestHandler is built for it (its set-up, default
headers, transforms, output buffering and detaching were a third of a socket's open
cost). Everything else (bad or partial handshakes, refused origins, other versions,
bodies) goes the usual way to `handlers.ws.WebSocket`, whose answers Tornado writes,
so the short path never has to produce an error.

What a socket sees is the same either way: the 101 carries `X-Request-ID` (its
request's scope, handlers.requestscope, is set while the socket runs), the access log
line and /metrics count it under route `/ws`, and subprotocols and extensions a client
offers are declined by omission, as Tornado does when the handler selects none.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import tornado
import tornado.http1connection
import tornado.websocket
from tornado import httputil

from actorbase.context import Context
from actorbase.logs import REQUEST_ID
from handlers import requestscope
from handlers.accesslog import client_ip
from handlers.cors import websocket_origin_allowed
from handlers.ws import Session, Upgraded, frame_params, write_now

PATH = "/ws"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""RFC 6455 1.3: appended to the client's key, hashed, in Sec-WebSocket-Accept."""
_RESPONSE = (
    "HTTP/1.1 101 Switching Protocols\r\n"
    f"Server: TornadoServer/{tornado.version}\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: {accept}\r\n"
    f"{requestscope.HEADER}: {{rid}}\r\n\r\n"
)


def accept_value(key: str) -> str:
    """Sec-WebSocket-Accept for the client's Sec-WebSocket-Key."""
    digest = hashlib.sha1(key.encode() + _GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


def plain_upgrade(request: httputil.HTTPServerRequest, ctx: Context) -> bool:
    """Whether Tornado would accept this handshake as it stands, with nothing to say
    but the 101: else it takes the usual route, which answers it."""
    if request.method != "GET" or request.path != PATH:
        return False
    headers = request.headers
    if (
        headers.get("Upgrade", "").lower() != "websocket"
        or headers.get("Sec-WebSocket-Version") != "13"
        or not headers.get("Sec-WebSocket-Key")
        or not headers.get("Host")
        or "Content-Length" in headers
        or "Transfer-Encoding" in headers
        or "Expect" in headers
    ):
        return False
    if "upgrade" not in (t.strip().lower() for t in headers.get("Connection", "").split(",")):
        return False
    # Tornado's cross-origin rule for WebSockets: same-origin fetches and clients that
    # send no Origin (not browsers) pass; any other origin must be allowed.
    site = headers.get("Sec-Fetch-Site")
    if site in ("same-origin", "none"):
        return True
    origin = headers.get("Origin")
    if origin is None:
        return site is None
    return websocket_origin_allowed(ctx.settings.cors_origins, origin, request.host)


class Application(requestscope.Application):
    """The route table's Application, with plain upgrades to /ws taken first."""

    def __init__(self, *args: Any, ctx: Context, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ctx = ctx
        self._params = frame_params(ctx)

    def find_handler(self, request: httputil.HTTPServerRequest, **kwargs: Any) -> Any:
        if plain_upgrade(request, self._ctx):
            return _Upgrade(self, request)
        return super().find_handler(request, **kwargs)

    def route_of(self, handler: Any) -> str | None:
        if type(handler) is Upgraded:
            return PATH
        return super().route_of(handler)

    def upgrade(self, request: httputil.HTTPServerRequest) -> None:
        """Answer 101 and run the socket; the headers have just been read."""
        ctx = self._ctx
        rid = requestscope.request_id(request.headers.get(requestscope.HEADER))
        connection = request.connection
        assert isinstance(connection, tornado.http1connection.HTTP1Connection)
        stream = connection.detach()
        accept = accept_value(request.headers["Sec-WebSocket-Key"])
        write_now(stream, _RESPONSE.format(accept=accept, rid=rid).encode())
        token = REQUEST_ID.set(rid)
        try:
            self.log_request(Upgraded(self, ctx, request))  # type: ignore[arg-type]
            protocol = tornado.websocket.WebSocketProtocol13(None, False, self._params)  # type: ignore[arg-type]
            protocol.stream = stream
            session = Session(ctx, protocol, client_ip(request, ctx.settings.trust_proxy), rid)
            protocol.handler = session
            session.open()
            # The socket's life, in a task that inherits the request's scope.
            session.reader = asyncio.ensure_future(protocol._receive_frame_loop())
        finally:
            REQUEST_ID.reset(token)


class _Upgrade(httputil.HTTPMessageDelegate):
    """The message delegate of a plain upgrade: answers it once its headers are in."""

    def __init__(self, app: Application, request: httputil.HTTPServerRequest) -> None:
        self._app = app
        self._request = request

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        self._app.upgrade(self._request)  # detaches: HTTP/1 reads nothing more
