"""Live queries over Server-Sent Events (`transport="sse"`): one stream per query, for
networks that do not pass WebSockets. The token goes in the Authorization header; a
stream the server ends for an expired token (`event: close`, 4001) or refuses with
401 is reopened with a refreshed token and `?since=` the last tx, so it resumes.
Presence needs the WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

from .backoff import Backoff
from .errors import ActorbaseError
from .events import Listeners
from .http import Http

if TYPE_CHECKING:
    from .live import LiveQuery

logger = logging.getLogger(__name__)

STREAM_TIMEOUT = 10**7
"""A stream is open-ended; only connecting is bounded (by the client's timeout)."""


class SseTransport:
    def __init__(self, http: Http) -> None:
        self._http = http
        self._client = AsyncHTTPClient(force_instance=True, max_clients=1000)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._seq = 0
        self.state = "connecting"
        self._changes: Listeners[str] = Listeners()
        self.opened: Listeners[str] = Listeners()
        self.connection_id: str | None = None

    def on_change(self, callback: Callable[[str], object]) -> Callable[[], None]:
        return self._changes.add(callback)

    def next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq}"

    def add(self, live: LiveQuery) -> None:
        self._tasks[live.id] = asyncio.ensure_future(self._stream(live))

    def remove(self, live: LiveQuery) -> None:
        task = self._tasks.pop(live.id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def wake(self) -> None:
        """Streams reconnect on their own backoff."""

    async def close(self) -> None:
        self._set_state("closed")
        for task in self._tasks.values():
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._client.close()

    def _set_state(self, state: str) -> None:
        if state != self.state and self.state != "closed":
            self.state = state
            self._changes.emit(state)

    async def _stream(self, live: LiveQuery) -> None:
        backoff = Backoff()
        while not live.closed:
            try:
                token = await self._http.access_token()
            except ActorbaseError:  # the refresh was refused: signed out
                token = None
            if token is None:
                self._set_state("offline")
                await backoff.wait()
                continue
            params: dict[str, Any] = {"q": json.dumps(live.query, separators=(",", ":"))}
            if live.tx is not None:
                params["since"] = live.tx
            parser = _EventParser(lambda event, data: self._event(live, event, data, backoff))
            request = HTTPRequest(
                f"{self._http.url}/api/subscribe?{urlencode(params)}",
                headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
                connect_timeout=self._http.timeout,
                request_timeout=STREAM_TIMEOUT,
                streaming_callback=parser.feed,
            )
            try:
                response = await self._client.fetch(request, raise_error=False)
            except (OSError, StreamClosedError, HTTPClientError) as exc:
                logger.debug("actorbase: SSE stream failed: %s", exc)
                response = None
            if live.closed:
                return
            if response is not None and response.code == 401:
                with contextlib.suppress(ActorbaseError):
                    await self._http.refresh(stale=token)
                continue
            if response is not None and 400 <= response.code < 500 and not parser.started:
                body = _json(parser.head)
                live.handle({"type": "error", **(body or {})})
                return
            if parser.expired:
                with contextlib.suppress(ActorbaseError):
                    await self._http.refresh(stale=token)
                continue
            self._set_state("offline")
            await backoff.wait()

    def _event(self, live: LiveQuery, event: str, data: Any, backoff: Backoff) -> None:
        if event in ("q-init", "q-diff") and isinstance(data, dict):
            backoff.reset()
            self._set_state("open")
            live.handle({**data, "type": event})


class _EventParser:
    """`text/event-stream` chunks → (event, parsed data) calls, at each blank line."""

    def __init__(self, emit: Callable[[str, Any], None]) -> None:
        self._emit = emit
        self._buffer = b""
        self._event = "message"
        self._data: list[str] = []
        self.started = False
        self.expired = False
        self.head = b""
        """The first bytes, kept to read an error body (a refused stream is JSON)."""

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < 65536:
            self.head += chunk[:65536]
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if not line:
                self._dispatch()
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    self._event = value
                elif name == "data":
                    self._data.append(value)

    def _dispatch(self) -> None:
        if self._data:
            data = _json("\n".join(self._data).encode())
            if self._event == "close":
                self.expired = isinstance(data, dict) and data.get("code") == 4001
            else:
                self.started = True
                self._emit(self._event, data)
        self._event, self._data = "message", []


def _json(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
