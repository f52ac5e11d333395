"""GET /api/subscribe?q=<json>: one live query as Server-Sent Events.

The fallback for clients without WebSocket (the seed's SSE section): `event: q-init`,
then `event: q-diff` frames, each `data:` the WebSocket message without its `type`
and with the subscription id "sub-1", each with an `id:` line carrying its tx. A
`: ping` comment goes out every SSE_HEARTBEAT seconds (routers drop idle streams).

The token comes in the Authorization header or, for EventSource (which cannot set
headers), in a `token` query parameter: less safe, since URLs end up in logs and
browser history, so prefer the header. A reconnect sending `Last-Event-ID: <tx>`
resumes: the changes since that tx are replayed from the ab_tx log as one q-diff
(flat queries; an empty one if nothing changed), else the stream starts over with a
fresh q-init. The stream ends when the token expires or its session is revoked
(`event: close`), or the server stops. The headers go out with the first frame: if
the live query fails before it (its result outgrows QUERY_MAX_BYTES, say), the answer
is that error in JSON with its status (an EventSource gives up on it rather than
retrying the same query every few seconds); if it fails later, the `event: error`
ends the stream, as it ends the subscription on a WebSocket. An EventSource
reconnects with the same URL, so one whose `?token=` expired would get 401 and give
up: the client opens a new one with a fresh token and `?since=<last tx seen>`
(handlers.resume), which resumes as Last-Event-ID does; a Last-Event-ID, the
browser's own newer position, wins over it.
An open stream counts as an in-flight HTTP request in /api/admin/health, and as one
of its user's WS_MAX_CONNECTIONS_PER_USER connections and MAX_SUBSCRIPTIONS_PER_USER
live queries: a stream over either cap is refused with 400 RESOURCE_EXCEEDED before
it starts (not 429: waiting does not help; the user must close another stream or
socket first, and EventSource gives up on either status rather than retrying).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from actorbase.errors import ApiError, InvalidArgument
from actors.bridge import ask
from actors.connection import ConnectionActor, Subscribe, Unsent
from handlers import jsonwire, socketlog
from handlers.accesslog import user_of
from handlers.base import ApiHandler
from handlers.resume import check_since, since_param
from handlers.ws import dumps, parse_live_query
from store import permissions

SUB_ID = "sub-1"

CLOSE_FAILED = 1011
"""The close code a stream ended by its live query's failure counts under (/metrics and
the socket log), as a WebSocket's for an unexpected condition."""


class SubscribeHandler(ApiHandler):
    """One SSE stream; implements actors.connection.Socket and actors.hub.Watched."""

    def bearer(self) -> str | None:
        return super().bearer() or self.get_query_argument("token", None) or None

    async def get(self) -> None:
        principal = self.require_auth()
        ctx = self.ctx
        assert ctx.hub is not None and ctx.dispatcher is not None and ctx.rooms is not None
        raw = self.get_query_argument("q", None)
        if raw is None:
            raise InvalidArgument("q: the query, as JSON, is required")
        parsed = jsonwire.decode(raw, "q")
        query, normalized = parse_live_query(ctx, parsed)
        permissions.check_query(principal, query)
        resume_from = _last_event_id(self.request.headers.get("Last-Event-ID"))
        since = since_param(self.get_query_argument("since", None))
        if resume_from is None and since is not None:
            await check_since(ctx, since)  # an EventSource reopened with a fresh token
            resume_from = since
        self.session_id = principal.session_id
        self.expires_at = principal.expires_at
        self._unsent = Unsent()
        self._done = asyncio.Event()
        self._server_close: tuple[int, str] | None = None
        self._opened_at: float | None = None
        """When the stream's headers went out, with its first bytes."""
        self._refused: ApiError | None = None
        """The live query failed before the stream started: the answer instead."""
        self._failing = False

        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        s = ctx.settings
        # Both raise ResourceExceeded over the user's caps before a byte is sent, so the
        # error is a plain JSON 400 (an error clears the stream's headers).
        conn = ConnectionActor.start(
            self,
            "conn-" + uuid.uuid4().hex[:16],
            principal,
            ctx.dispatcher,
            ctx.rooms,
            1,
            0,
            s.ws_buffer_soft,
            s.ws_buffer_hard,
            ctx.hub.users,
        )
        ctx.hub.streams.add(self)
        try:
            await ask(conn, Subscribe(SUB_ID, dumps(SUB_ID), query, normalized, resume_from))
            await self._done.wait()
            if self._refused is not None:
                raise self._refused  # nothing was sent: a plain JSON error
        finally:
            ctx.hub.streams.discard(self)
            conn.stop(block=False)
            if self._opened_at is not None:
                socketlog.closed(
                    "sse",
                    request_id=None,  # the request's own, from its scope
                    user=user_of(self),
                    remote_ip=self.client_ip(),
                    server_close=self._server_close,
                    client_close=(None, "client disconnected"),
                    opened_at=self._opened_at,
                )

    def on_connection_close(self) -> None:
        done = getattr(self, "_done", None)
        if done is not None:
            done.set()

    # -- actors.connection.Socket and actors.hub.Watched (loop thread) -------------------

    def encode(self, text: str) -> bytes:
        return text.encode()

    def send_bytes(self, data: bytes) -> None:
        if self._done.is_set():
            return
        if self._opened_at is None:
            self._opened_at = time.monotonic()
            socketlog.opened("sse", user_of(self), self.client_ip())
        self.write(data)
        self._unsent.track(len(data), self.flush())
        if self._failing:  # that was the error event: the stream's one query is over
            self._end(CLOSE_FAILED, "live query failed")

    def query_failed(self, error: ApiError) -> bool:
        if self._opened_at is None:
            self._refused = error
            self._done.set()
            return True
        self._failing = True
        return False

    def frame(self, kind: str, id_json: str, rest: str, tx: int | None) -> str:
        id_line = "" if tx is None else f"id: {tx}\n"
        return f'event: {kind}\n{id_line}data: {{"id":{id_json},{rest}\n\n'

    def buffered(self) -> int:
        return self._unsent.bytes

    def when_drained(self, below: int, callback: Callable[[], None]) -> None:
        self._unsent.when_drained(below, callback)

    def heartbeat(self) -> None:
        self.send_bytes(b": ping\n\n")

    async def settle(self) -> None:
        """A stream owes its client nothing but diffs: it may close at once."""

    def close_for(self, code: int, reason: str) -> None:
        """End the stream; the WebSocket close code and reason go out first as an
        `event: close` (4001: sign in again; 1001: the server is stopping)."""
        self.send_bytes(
            f"event: close\ndata: {dumps({'code': code, 'reason': reason})}\n\n".encode()
        )
        self._end(code, reason)

    def _end(self, code: int, reason: str) -> None:
        if not self._done.is_set():
            self.ctx.metrics.closed("sse", code, reason)
        self._server_close = (code, reason)
        self._done.set()


def _last_event_id(raw: str | None) -> int | None:
    """The tx a reconnecting EventSource last saw; anything else starts afresh."""
    if raw is None or not raw.strip().isdigit() or len(raw.strip()) > 18:
        return None
    return int(raw.strip())
