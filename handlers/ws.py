"""The WebSocket protocol at /ws, in one place (the seed's "WebSocket" section).

Client messages: `auth` (first, and again with a fresh token of the same user before
the old one expires; its role and claims then govern everything the socket has open,
see actors.connection.Reauth), `subscribe`, `unsubscribe`, `mutate`, `pong`, `presence-enter`,
`presence-update`, `presence-leave`. Server messages: `auth-ok`, `auth-error`,
`q-init`, `q-diff`, `mutate-ok`, `mutate-error`, `unsubscribe-ok`, `ping`,
`presence-change`, and `error` (`{type, error: {code, message, status}, id?}`) for
every message that is malformed, unknown, over a limit or fails. `auth-ok` carries the
socket's `connectionId` (its peer id in presence); `subscribe` may carry `since`, the
last tx the client saw, to resume (handlers.resume); `mutate` may carry an
`idempotencyKey` (store.idempotency), a retry then answers `mutate-ok` with the first
commit's tx and `replayed: true`.

Close codes: 4001 authentication failed, expired (no fresh `auth` in time), never
came, or the session was revoked; 4002 no `pong` within a ping interval; 4008 a slow
consumer past WS_BUFFER_HARD; 4029 the user already has WS_MAX_CONNECTIONS_PER_USER
connections open (after `auth-error`); 1001 the server is stopping; 1009 (Tornado) a
message over four times WS_MAX_MESSAGE_BYTES.

Every message counts against WS_MESSAGE_RATE, whatever its type (`auth` and `pong`
too, malformed ones and those before `auth`): over it, `error` RATE_LIMITED and the
message is dropped; the socket stays open, unless it has not authenticated yet: then
it is closed with 4001, like a socket that sends anything but `auth` or `pong` first.

Everything here runs on the IOLoop. A socket is a `Session` on Tornado's frame
protocol, whichever way it was accepted (handlers.upgrade answers plain handshakes
before routing; `WebSocket`, the route, the rest). Messages of one socket are handled
one at a time in order (the frame protocol awaits `on_message`; a message whose
handling never waits costs no task, handlers.eager), except `mutate`, which waits for
COMMIT in a task of its own so a slow write never delays a pong.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

import tornado.web
import tornado.websocket
import ujson
from tornado.concurrent import Future
from tornado.httputil import HTTPServerRequest
from tornado.iostream import IOStream, StreamClosedError
from tornado.websocket import WebSocketProtocol, _WebSocketParams

from actorbase.context import Context
from actorbase.errors import (
    ApiError,
    Internal,
    InvalidArgument,
    PayloadTooLarge,
    RateLimited,
    ResourceExceeded,
    Unauthenticated,
)
from actorbase.logs import REQUEST_ID
from actors.bridge import ask
from actors.connection import (
    ConnectionActor,
    PresenceOp,
    Reauth,
    Subscribe,
    Unsent,
    Unsubscribe,
)
from actors.hub import CLOSE_AUTH, CLOSE_HEARTBEAT, CLOSE_TOO_MANY
from actors.room import ROOM_RE
from actors.runtime import LATER, handle_now
from actors.transactor import submit
from handlers import jsonwire, socketlog
from handlers.accesslog import client_ip, user_of
from handlers.base import principal_for_token
from handlers.cors import log_refused, websocket_origin_allowed
from handlers.eager import run_eagerly
from handlers.resume import check_since, since_of
from store import idempotency, permissions
from store.mutations import parse_ops
from store.principal import Principal
from store.query.ast import Query
from store.query.parse import parse_query

logger = logging.getLogger(__name__)

SUB_ID_MAX = 128

SETTLE_TURN = 0.05
"""Seconds a stopping server gives a socket's already-sent frames to be answered."""


def dumps(value: Any) -> str:
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False)


def ws_frame(text: str) -> bytes:
    """One unfragmented, unmasked, uncompressed text frame (RFC 6455 5.2), as a server
    sends it: the same bytes for every socket, so a broadcast is framed once. (The
    handler does not override get_compression_options, so no extension is negotiated.)"""
    data = text.encode()
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 0x10000:
        return struct.pack("!BBH", 0x81, 126, n) + data
    return struct.pack("!BBQ", 0x81, 127, n) + data


_PING = ws_frame('{"type":"ping"}')


def parse_live_query(ctx: Context, raw: Any) -> tuple[Query, str]:
    """A subscription's query, parsed with /api/query's limits and links, and the
    normalized form that identical subscriptions share a computation under."""
    query = parse_query(raw, ctx.links, ctx.query_limits)
    if any(eq.after is not None for eq in query.entities):
        raise InvalidArgument("$after: a live query follows the first page; drop the cursor")
    return query, repr(query)


def write_now(stream: IOStream, data: bytes) -> tuple[int, Future[None] | None]:
    """Write `data` after everything written to `stream` before it: the bytes left
    for the stream to write and its future, (0, None) if the kernel took them all.

    While nothing waits on the stream, the bytes go straight to the socket: one send,
    no future (Tornado's `write_message` costs a task and two futures a frame, most of
    a fan-out's time). What the kernel does not take goes through the stream, which
    keeps the order. Raises StreamClosedError if the stream is closed.
    """
    if not stream.writing() and stream.__class__ is IOStream:  # TLS: via the stream
        try:
            sent = stream.socket.send(data)
        except OSError:  # would block, or failed: the stream's write handles it
            sent = 0
        if sent == len(data):
            return 0, None
        data = data[sent:]
    return len(data), stream.write(data)


def frame_params(ctx: Context) -> _WebSocketParams:
    """The frame protocol's settings: no compression, no Tornado pings (the hub sends
    ours), and a message over four times WS_MAX_MESSAGE_BYTES closed with 1009 (up
    to it, `on_message` answers an error)."""
    return _WebSocketParams(max_message_size=4 * ctx.settings.ws_max_message_bytes)


class WebSocket(tornado.websocket.WebSocketHandler):
    """The /ws route: the upgrades `handlers.upgrade` leaves to Tornado (anything
    but a plain, valid handshake; it takes the rest before routing). Tornado answers
    the invalid ones (400, 403 for a refused origin, 426 for another version) and
    accepts the others; the socket is then a `Session`, as on the short path."""

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def max_message_size(self) -> int:
        return frame_params(self.ctx).max_message_size

    def check_origin(self, origin: str) -> bool:
        # Pages of this server and CORS_ORIGINS; clients sending no Origin never get here.
        ctx, host = self.ctx, self.request.host
        allowed = websocket_origin_allowed(ctx.settings.cors_origins, origin, host)
        if not allowed:
            log_refused(origin, "websocket")
        return allowed

    def open(self, *args: str, **kwargs: str) -> None:
        conn = self.ws_connection
        assert conn is not None
        ip = client_ip(self.request, self.ctx.settings.trust_proxy)
        session = Session(self.ctx, conn, ip, REQUEST_ID.get())
        conn.handler = session  # its frames and its close go to the session from here
        self.ws_connection = None
        session.open()


class Upgraded:
    """What the access log and /metrics read of a 101 that `handlers.upgrade`
    answered without a RequestHandler: the fields `accesslog.log_request` and
    `Metrics.observe` read of the route's handler (counted under the same route)."""

    __slots__ = ("application", "ctx", "request")

    principal = None

    def __init__(
        self,
        application: tornado.web.Application,
        ctx: Context,
        request: HTTPServerRequest,
    ) -> None:
        self.application = application
        self.ctx = ctx
        self.request = request

    def get_status(self) -> int:
        return 101


class Session:
    """One client socket once upgraded: the protocol state machine, and the delegate
    of Tornado's frame protocol (`WebSocketProtocol13`: masking, fragmentation, ping
    and close frames, the size limit). Every write goes through `send_bytes`, which
    counts unsent bytes for the connection's flow control. A plain object with slots,
    not a RequestHandler: a socket keeps only what it uses.
    """

    __slots__ = (
        "_bucket",
        "_conn",
        "_ip",
        "_messages_in",
        "_messages_out",
        "_open",
        "_opened_at",
        "_ponged",
        "_rid",
        "_server_close",
        "_tasks",
        "_unsent",
        "close_code",
        "close_reason",
        "conn_id",
        "ctx",
        "expires_at",
        "principal",
        "reader",
        "session_id",
        "ws_connection",
    )

    _tasks: set[asyncio.Task[None]] | None
    """Mutations waiting for COMMIT; `settle` waits for them before a 1001 close."""

    def __init__(
        self, ctx: Context, conn: WebSocketProtocol, ip: str, request_id: str | None
    ) -> None:
        self.ctx = ctx
        self.ws_connection: WebSocketProtocol | None = conn
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.conn_id: str | None = None
        """The id presence lists for this socket; `auth-ok` tells the client."""
        self.principal: Principal | None = None
        self.session_id: str | None = None
        self.expires_at: float | None = None
        self._conn: Any = None
        self._opened_at = time.monotonic()
        self._ponged = True
        self._open = False
        self._unsent = Unsent()
        # The message-rate token bucket: (tokens, when last refilled).
        self._bucket = (float(2 * ctx.settings.ws_message_rate), self._opened_at)
        self._tasks = None
        # For the close line (handlers.socketlog): frames in and out, who closed.
        self._messages_in = self._messages_out = 0
        self._server_close: tuple[int | None, str | None] | None = None
        self._rid = request_id
        self._ip = ip
        self.reader: asyncio.Future[None] | None = None
        """The task reading its frames, when the socket has one of its own
        (handlers.upgrade; Tornado's handler task reads them on the long path)."""

    def open(self) -> None:
        """The 101 is out: count the socket, or close it if the server is stopping."""
        if self.ctx.shutting_down or self.ctx.hub is None:
            self.close(1001, "Server is shutting down")
            return
        self._open = True
        self.ctx.websockets += 1
        self.ctx.hub.websockets.add(self)
        socketlog.opened("websocket", None, self._ip)

    # -- the frame protocol's callbacks ----------------------------------------------------

    def on_ws_connection_close(
        self, close_code: int | None = None, close_reason: str | None = None
    ) -> None:
        self.close_code = close_code
        self.close_reason = close_reason
        conn = self.ws_connection
        if conn is not None:
            self.ws_connection = None
            conn.on_connection_close()
        self.on_close()

    def on_ping(self, data: bytes) -> None:
        pass  # the frame protocol answers it with a pong frame

    def on_pong(self, data: bytes) -> None:
        pass  # the heartbeat is the seed's JSON ping and pong, not these frames

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """A callback raised (the frame protocol then drops the connection)."""
        logger.error("websocket callback failed", exc_info=(typ, value, tb))  # type: ignore[arg-type]

    def on_close(self) -> None:
        if not self._open:
            return
        self._open = False
        self.ctx.websockets -= 1
        socketlog.closed(
            "websocket",
            request_id=self._rid,
            user=user_of(self),
            remote_ip=self._ip,
            server_close=self._server_close,
            client_close=(self.close_code, self.close_reason),
            opened_at=self._opened_at,
            messages_in=self._messages_in,
            messages_out=self._messages_out,
        )
        if self.ctx.hub is not None:
            self.ctx.hub.websockets.discard(self)
        # Mutations still waiting for COMMIT are left to finish: a mutation received is
        # applied, as a REST write whose client went away is; only its answer is lost.
        if self._conn is not None:
            self._conn.stop(block=False)  # leaves its subscriptions and rooms

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self._server_close is None:
            self._server_close = (code, reason)
        conn = self.ws_connection
        if conn is not None:
            self.ws_connection = None
            conn.close(code, reason)

    # -- incoming --------------------------------------------------------------------------

    def on_message(self, message: str | bytes) -> Future[None] | None:
        """Handled at once (the frame protocol reads the next frame after it); a
        future only if the handling has to wait (handlers.eager)."""
        self._messages_in += 1
        return run_eagerly(self._on_message(message))

    async def _on_message(self, message: str | bytes) -> None:
        try:
            await self._handle(message)
        except ApiError as exc:
            self.send_api_error(exc, _id_of(message))
        except Exception:
            logger.exception("websocket message failed")
            self.send_api_error(Internal(), None)

    async def _handle(self, message: str | bytes) -> None:
        try:
            self._take_token()  # every message, before any work on it
        except RateLimited as exc:
            if self.principal is not None:
                raise
            # Before auth only one message is any use: a socket that floods is closed.
            self.send_api_error(exc, None)
            self.close(CLOSE_AUTH, "Too many messages before auth")
            return
        if isinstance(message, bytes):
            raise InvalidArgument("Binary messages are not supported; send JSON text")
        limit = self.ctx.settings.ws_max_message_bytes
        if len(message) > limit:
            raise PayloadTooLarge(f"Message exceeds {limit} bytes")
        try:
            msg = jsonwire.decode(message, "message")
        except InvalidArgument as exc:
            if self.principal is not None and "valid JSON" not in exc.message:
                raise
            msg = None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            if self.principal is None:
                self._refuse("Send auth first, as a JSON object with a type")
                return
            raise InvalidArgument("Messages are JSON objects with a string `type`")
        kind = msg["type"]
        if kind == "pong":
            self._ponged = True
            return
        if kind == "auth":
            await self._auth(msg)
            return
        if self.principal is None:
            self._refuse(f"Send auth before {kind!r}")
            return
        handler = self._handlers.get(kind)
        if handler is None:
            raise InvalidArgument(f"Unknown message type {kind!r}")
        await handler(self, msg)

    async def _ask(self, message: Any) -> Any:
        """Ask the connection actor: answered on the spot while it is idle, as it is
        between this socket's messages (actors.runtime.handle_now), else in its turn."""
        reply = handle_now(self._conn, message)
        if reply is LATER:
            reply = await ask(self._conn, message)
        return reply

    def _take_token(self) -> None:
        rate = self.ctx.settings.ws_message_rate
        now = time.monotonic()
        tokens, refilled = self._bucket
        tokens = min(2.0 * rate, tokens + (now - refilled) * rate)
        if tokens < 1:
            self._bucket = (tokens, now)
            raise RateLimited(1)
        self._bucket = (tokens - 1, now)

    def _refuse(self, reason: str) -> None:
        self.send_api_error(Unauthenticated(reason), None)
        self.close(CLOSE_AUTH, reason)

    async def _auth(self, msg: dict[str, Any]) -> None:
        token = msg.get("token")
        try:
            if not isinstance(token, str) or not token:
                raise Unauthenticated("auth: token must be a non-empty string")
            principal = await principal_for_token(self.ctx, token)
            if self.principal is not None and (
                principal.is_admin != self.principal.is_admin
                or principal.user_id != self.principal.user_id
            ):
                raise Unauthenticated("auth: a connection stays with the user it began with")
        except Unauthenticated as exc:
            self.send({"type": "auth-error", "message": exc.message})
            self.close(CLOSE_AUTH, exc.message[:120])
            return
        # A fresh token extends the connection past the old token's expiry.
        self.expires_at = principal.expires_at
        self.session_id = principal.session_id
        if self.principal is not None:
            # The new token's role and claims (an admin may have changed them) govern
            # everything from here: mutations and presence checks read self.principal,
            # and the connection re-checks what is open.
            changed = principal != self.principal
            self.principal = principal
            if changed:
                for exc in await self._ask(Reauth(principal)):
                    self.send_api_error(exc, None)
        else:
            ctx = self.ctx
            assert ctx.dispatcher is not None and ctx.rooms is not None and ctx.hub is not None
            s = ctx.settings
            conn_id = "conn-" + uuid.uuid4().hex[:16]
            try:
                self._conn = ConnectionActor.start(
                    self,
                    conn_id,
                    principal,
                    ctx.dispatcher,
                    ctx.rooms,
                    s.ws_max_subscriptions,
                    s.presence_max_rooms,
                    s.ws_buffer_soft,
                    s.ws_buffer_hard,
                    ctx.hub.users,
                )
            except ResourceExceeded as exc:  # WS_MAX_CONNECTIONS_PER_USER
                self.send({"type": "auth-error", "message": exc.message})
                self.close(CLOSE_TOO_MANY, exc.message[:120])
                return
            self.principal = principal
            self.conn_id = conn_id
        self.send({"type": "auth-ok", "userId": principal.user_id, "connectionId": self.conn_id})

    async def _subscribe(self, msg: dict[str, Any]) -> None:
        sub_id = _sub_id(msg)
        if "query" not in msg:
            raise InvalidArgument("subscribe: query is required")
        query, normalized = parse_live_query(self.ctx, msg["query"])
        assert self.principal is not None
        permissions.check_query(self.principal, query)
        since = since_of(msg.get("since"))  # resume: see handlers.resume
        if since is not None:
            await check_since(self.ctx, since)
        await self._ask(Subscribe(sub_id, dumps(sub_id), query, normalized, since))

    async def _unsubscribe(self, msg: dict[str, Any]) -> None:
        sub_id = _sub_id(msg)
        await self._ask(Unsubscribe(sub_id))
        self.send({"type": "unsubscribe-ok", "id": sub_id})

    async def _mutate(self, msg: dict[str, Any]) -> None:
        mut_id = msg.get("id")
        if not isinstance(mut_id, str) or not 0 < len(mut_id) <= SUB_ID_MAX:
            raise InvalidArgument(f"mutate: id must be a string of 1-{SUB_ID_MAX} characters")
        assert self.principal is not None
        try:
            ops = parse_ops(msg.get("ops"))
            key = idempotency.key_for(
                msg.get("idempotencyKey"), self.principal, ops, "idempotencyKey"
            )
        except ApiError as exc:
            self._mutate_error(mut_id, exc)
            return
        if self.ctx.shutting_down:
            # Answered now, so the socket's queue of answers empties and it can close.
            self._mutate_error(mut_id, Internal("The server is shutting down"))
            return
        reply = submit(self.ctx.transactor, ops, self.principal, key=key)
        task = asyncio.ensure_future(self._await_commit(mut_id, reply))
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await_commit(self, mut_id: str, reply: Any) -> None:
        try:
            outcome = await asyncio.wrap_future(reply)
        except ApiError as exc:
            self._mutate_error(mut_id, exc)
        except Exception:
            logger.exception("websocket mutation failed")
            self._mutate_error(mut_id, Internal())
        else:
            replayed = {"replayed": True} if outcome.replayed else {}
            self.send({"type": "mutate-ok", "id": mut_id, "tx": outcome.tx, **replayed})

    async def settle(self) -> None:
        """Return once every mutation received has been answered (actors.hub.Watched:
        the server stops; a mutation received from now on is refused at once)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))
        # Frames the client sent before the stop but still in the socket's buffers are
        # handled one per loop turn, each answered at once: a moment for them to be.
        await asyncio.sleep(SETTLE_TURN)

    def _mutate_error(self, mut_id: str, exc: ApiError) -> None:
        self.send({"type": "mutate-error", "id": mut_id, **exc.to_wire()})

    async def _presence(self, msg: dict[str, Any]) -> None:
        op = msg["type"].removeprefix("presence-")
        room = msg.get("room")
        if not isinstance(room, str) or not ROOM_RE.fullmatch(room):
            raise InvalidArgument("room: 1-128 letters, digits or _ . : @ ~ -")
        data = msg.get("data")
        if op != "leave":
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise InvalidArgument("data: must be a JSON object")
            limit = self.ctx.settings.presence_max_bytes
            if len(dumps(data).encode()) > limit:
                raise PayloadTooLarge(f"data: presence data exceeds {limit} bytes")
            assert self.principal is not None
            permissions.check_room(self.principal, room)
        entered = await self._ask(PresenceOp(op, room, data))
        if entered is not None:
            await entered  # rooms across processes: the database decides if one is full

    _handlers = {
        "subscribe": _subscribe,
        "unsubscribe": _unsubscribe,
        "mutate": _mutate,
        "presence-enter": _presence,
        "presence-update": _presence,
        "presence-leave": _presence,
    }

    # -- outgoing (actors.connection.Socket and actors.hub.Watched) -----------------------

    def send(self, body: dict[str, Any]) -> None:
        self.send_bytes(ws_frame(dumps(body)))

    def send_api_error(self, exc: ApiError, msg_id: str | None) -> None:
        body: dict[str, Any] = {"type": "error", **exc.to_wire()}
        if msg_id is not None:
            body["id"] = msg_id
        self.send(body)

    def encode(self, text: str) -> bytes:
        return ws_frame(text)

    def send_bytes(self, data: bytes) -> None:
        """Write one frame (from `ws_frame`) after everything written before it (see
        `write_now`); bytes the kernel did not take count as unsent until written."""
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            return
        self._messages_out += 1
        try:
            unsent, future = write_now(conn.stream, data)
        except StreamClosedError:
            return
        if future is not None:
            self._unsent.track(unsent, future)

    def frame(self, kind: str, id_json: str, rest: str, tx: int | None) -> str:
        return '{"type":"' + kind + '","id":' + id_json + "," + rest

    def query_failed(self, error: ApiError) -> bool:
        """The error frame tells the client; the socket and its other queries go on."""
        return False

    def buffered(self) -> int:
        return self._unsent.bytes

    def when_drained(self, below: int, callback: Callable[[], None]) -> None:
        self._unsent.when_drained(below, callback)

    def close_for(self, code: int, reason: str) -> None:
        if self.ws_connection is not None:  # counted once: Tornado drops it on close
            self.ctx.metrics.closed("websocket", code, reason)
        self.close(code, reason)

    def heartbeat(self) -> None:
        interval = self.ctx.settings.ws_ping_interval
        if self.principal is None:
            if time.monotonic() - self._opened_at >= interval:
                self.close(CLOSE_AUTH, "Authentication timeout: send auth first")
            return
        if not self._ponged:
            self.close(CLOSE_HEARTBEAT, f"No pong within {interval:g} s")
            return
        self._ponged = False
        self.send_bytes(_PING)


def _sub_id(msg: dict[str, Any]) -> str:
    sub_id = msg.get("id")
    if not isinstance(sub_id, str) or not 0 < len(sub_id) <= SUB_ID_MAX:
        raise InvalidArgument(f"id: must be a string of 1-{SUB_ID_MAX} characters")
    return sub_id


def _id_of(message: str | bytes) -> str | None:
    """The `id` of a message that failed, to echo in its error (if it has one)."""
    if isinstance(message, bytes) or len(message) > 1 << 20:
        return None
    try:
        msg = ujson.loads(message)
    except ValueError:
        return None
    value = msg.get("id") if isinstance(msg, dict) else None
    return value if isinstance(value, str) and len(value) <= SUB_ID_MAX else None
