"""The live WebSocket: one socket for every live query and presence room of a client.

It authenticates with the current access token, (re)subscribes each live query with
`since` = the last tx it applied (the server answers one q-diff, or a q-init when it
cannot resume), re-enters presence rooms, answers pings, and sends `auth` again with
each refreshed token, before the old one expires, so nothing is resubscribed. When
the socket drops it reconnects with exponential backoff and jitter; `state` and
`on_change` tell the app whether it is live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from .backoff import Backoff
from .errors import ActorbaseError
from .events import Listeners
from .http import Http
from .tokens import Tokens

if TYPE_CHECKING:
    from .live import LiveQuery
    from .presence import Room

logger = logging.getLogger(__name__)

MAX_MESSAGE = 64 << 20
"""Largest frame accepted: a q-init may reach QUERY_MAX_BYTES (16 MiB by default)."""


@dataclass(slots=True)
class ConnectionStats:
    connects: int = 0
    """Sockets that authenticated (1 while the first socket lives)."""
    reauths: int = 0
    """Fresh tokens accepted on an open socket."""


class Connection:
    def __init__(self, http: Http, backoff: Backoff, idle_timeout: float | None = 90) -> None:
        self._http = http
        self._backoff = backoff
        self._idle_timeout = idle_timeout
        """Seconds without a frame (the server pings every WS_PING_INTERVAL, 30 s by
        default) after which the socket is taken for dead and replaced: a connection
        cut without a FIN (a laptop asleep, a NAT forgetting it) is noticed."""
        self.state = "connecting"
        self.connection_id: str | None = None
        """This socket's id among presence peers (from `auth-ok`)."""
        self.user_id: str | None = None
        self.stats = ConnectionStats()
        self.opened: Listeners[str] = Listeners()
        self._changes: Listeners[str] = Listeners()
        self._lives: dict[str, LiveQuery] = {}
        self._rooms: dict[str, Room] = {}
        self._ws: WebSocketClientConnection | None = None
        self._authed = False
        self._task: asyncio.Task[None] | None = None
        self._signed_in = asyncio.Event()
        self._closed = False
        self._seq = 0
        http.token_changes.add(self._on_tokens)

    # -- public ---------------------------------------------------------------------------

    def on_change(self, callback: Callable[[str], object]) -> Callable[[], None]:
        """Called with each new state: connecting, open, offline, closed."""
        return self._changes.add(callback)

    def next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq}"

    def add(self, live: LiveQuery) -> None:
        self._lives[live.id] = live
        self._start()
        if self._authed:
            self._subscribe(live)

    def remove(self, live: LiveQuery) -> None:
        if self._lives.pop(live.id, None) is not None and not live.error:
            self.send({"type": "unsubscribe", "id": live.id})

    def add_room(self, room: Room) -> None:
        self._rooms[room.name] = room
        self._start()

    def remove_room(self, room: Room) -> None:
        self._rooms.pop(room.name, None)

    @property
    def authed(self) -> bool:
        return self._authed

    def send(self, message: dict[str, Any]) -> bool:
        """Send on the authenticated socket; False if there is none right now."""
        if self._ws is None or not self._authed:
            return False
        try:
            self._ws.write_message(json.dumps(message, separators=(",", ":")))
        except WebSocketClosedError:
            return False
        return True

    def wake(self) -> None:
        """The server answered over HTTP: if offline, reconnect now."""
        if self.state == "offline":
            self._backoff.wake()

    async def close(self) -> None:
        self._closed = True
        self._set_state("closed")
        if self._ws is not None:
            self._ws.close(1000)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the socket's life ----------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.ensure_future(self._run())

    def _set_state(self, state: str) -> None:
        if state != self.state and (self.state != "closed" or state == "closed"):
            self.state = state
            self._changes.emit(state)

    def _on_tokens(self, tokens: Tokens | None) -> None:
        if tokens is None:
            self._signed_in.clear()
            if self._ws is not None:
                self._ws.close(1000, "signed out")
            return
        self._signed_in.set()
        if self._authed:  # a refreshed token: the socket goes on past the old one's expiry
            self.send({"type": "auth", "token": tokens.access_token})

    async def _run(self) -> None:
        while not self._closed:
            try:
                await self._connect_once()
            except (ActorbaseError, OSError, StreamClosedError, HTTPClientError) as exc:
                logger.debug("actorbase: live socket: %s", exc)
            except Exception:  # never let the socket's task die: log, back off, retry
                logger.exception("actorbase: live socket failed")
            if self._closed:
                break
            self._set_state("offline")
            await self._backoff.wait()

    async def _connect_once(self) -> None:
        """One socket, from connect to close (or nothing, while signed out)."""
        if self._http.tokens is None:
            self._set_state("offline")
            self._signed_in.clear()
            await self._signed_in.wait()
        token = await self._http.access_token()  # refreshed first if close to expiry
        if token is None:
            return
        if self.state != "open":
            self._set_state("connecting")
        ws = await websocket_connect(
            HTTPRequest(
                self._http.url.replace("http", "ws", 1) + "/ws", connect_timeout=self._http.timeout
            ),
            max_message_size=MAX_MESSAGE,
        )
        self._ws = ws
        reauth = asyncio.ensure_future(self._reauth_loop())
        auth_error = False
        try:
            ws.write_message(json.dumps({"type": "auth", "token": token}))
            auth_error = await self._read(ws)
        except WebSocketClosedError:
            pass
        finally:
            reauth.cancel()
            self._ws = None
            self._authed = False
            for room in self._rooms.values():
                room.disconnected()
        if not self._closed and (auth_error or ws.close_code == 4001):
            # The token was refused (expired, revoked): a new one, or sign in again.
            await self._http.refresh(stale=token)

    async def _read(self, ws: WebSocketClientConnection) -> bool:
        """Dispatch frames until the socket closes; True if auth was refused."""
        auth_error = False
        while True:
            try:
                text = await asyncio.wait_for(ws.read_message(), self._idle_timeout)
            except TimeoutError:
                ws.close(4000, "No frame from the server")
                return auth_error
            if text is None:
                return auth_error
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            kind = msg.get("type")
            if kind == "ping":
                ws.write_message('{"type":"pong"}')
            elif kind in ("q-init", "q-diff"):
                live = self._lives.get(msg.get("id", ""))
                if live is not None:
                    live.handle(msg)
            elif kind == "presence-change":
                room = self._rooms.get(msg.get("room", ""))
                if room is not None:
                    room.handle(msg)
            elif kind == "auth-ok":
                self._authenticated(msg)
            elif kind == "auth-error":
                auth_error = True
            elif kind == "error":
                self._error(msg)

    def _authenticated(self, msg: dict[str, Any]) -> None:
        if self._authed:
            self.stats.reauths += 1
            return
        user_id = msg.get("userId")
        if self.user_id is not None and user_id != self.user_id:
            for live in self._lives.values():  # another user: nothing to resume
                live.tx = None
        self.user_id = user_id
        self.connection_id = msg.get("connectionId")
        self._authed = True
        self.stats.connects += 1
        self._backoff.reset()
        for live in list(self._lives.values()):
            self._subscribe(live)
        for room in list(self._rooms.values()):
            room.connected(self.connection_id)
        self._set_state("open")
        self.opened.emit(self.connection_id or "")

    def _subscribe(self, live: LiveQuery) -> None:
        message: dict[str, Any] = {"type": "subscribe", "id": live.id, "query": live.query}
        if live.tx is not None:
            message["since"] = live.tx
        self.send(message)

    def _error(self, msg: dict[str, Any]) -> None:
        target = msg.get("id")
        live = self._lives.get(target or "")
        if live is not None:
            error = msg.get("error") or {}
            if str(error.get("message", "")).startswith("since") and live.tx is not None:
                live.tx = None  # a database that went back in time: start afresh
                self._subscribe(live)
                return
            live.handle(msg)
            return
        for room in self._rooms.values():
            if room.handle_error(target, msg):
                return
        logger.warning("actorbase: live socket error: %s", msg.get("error"))

    async def _reauth_loop(self) -> None:
        """Refresh the token before it expires; `_on_tokens` then re-auths the socket."""
        while True:
            claims = self._http.claims
            if claims is None:
                return
            await asyncio.sleep(max(1.0, claims.refresh_at() - time.time()))
            with contextlib.suppress(ActorbaseError):
                await self._http.access_token()
