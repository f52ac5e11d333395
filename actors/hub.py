"""The hub: every open WebSocket and SSE stream of this process, and their timers.

One periodic task each, on the IOLoop, rather than timers per connection: heartbeats
(WebSocket pings, SSE comment lines), token expiry, and the check that open
connections' sessions still stand. Every SESSION_CHECK_INTERVAL it reads, on the read
pool, the sessions that ended lately (revoked or expired, by any server process on the
same database) and closes the sockets that hold one, within a few seconds.

WebSocket pings are staggered: the ping interval is cut into PING_SLICES steps and
each socket is pinged in the step its identity hash picks, so 10,000 sockets do not
get their pings, and send their pongs, in one burst. A socket's hash never changes,
so each one is still pinged exactly once per interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from store.accounts import Accounts
from store.base import now_ms
from store.readpool import ReadPool

logger = logging.getLogger(__name__)

CLOSE_AUTH = 4001
"""Authentication failed, ended, or never came (the seed's auth-error close)."""

CLOSE_HEARTBEAT = 4002
"""No pong within a ping interval."""

CLOSE_GOING_AWAY = 1001
"""The server is stopping."""

PING_SLICES = 50
"""Steps a ping interval is cut into (fewer when a step would be under MIN_PING_STEP)."""

MIN_PING_STEP = 0.02
"""Shortest time between two ping steps, in seconds."""

SESSION_OVERLAP_MS = 30_000
"""Each session check looks this far behind the previous one: a socket that registered
while a check ran, or a node whose clock lags, still sees a revocation."""


class Watched(Protocol):
    """What the hub needs of a connection; all on the loop thread."""

    session_id: str | None
    """The access token's session (None: admin token or not signed in yet)."""
    expires_at: float | None
    """When the token stops being valid (time.time()); None: never (admin token)."""

    def heartbeat(self) -> None:
        """Send a ping (WebSocket: and close if the last one went unanswered)."""

    def close_for(self, code: int, reason: str) -> None:
        """Close with a code and reason the client sees."""


class Hub:
    """Open connections by kind; starts and stops the periodic checks."""

    def __init__(
        self,
        reads: ReadPool,
        accounts: Accounts,
        ping_interval: float,
        sse_heartbeat: float,
        session_check_interval: float,
    ) -> None:
        self._reads = reads
        self._accounts = accounts
        self._intervals = (ping_interval, sse_heartbeat, session_check_interval)
        self.websockets: set[Watched] = set()
        self.streams: set[Watched] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._sessions_checked = now_ms()

    def start(self) -> None:
        ping, sse, check = self._intervals
        slices = max(1, min(PING_SLICES, int(ping / MIN_PING_STEP)))
        self._tasks = [
            asyncio.ensure_future(self._ping_staggered(ping, slices)),
            asyncio.ensure_future(self._every(sse, self._sse_ping)),
            asyncio.ensure_future(self._every(min(check, 1.0), self._expire)),
            asyncio.ensure_future(self._every(check, self._check_sessions)),
        ]

    def close_all(self) -> None:
        """Stop the checks and close every connection (1001: the server is stopping)."""
        for task in self._tasks:
            task.cancel()
        for conn in list(self.websockets) + list(self.streams):
            conn.close_for(CLOSE_GOING_AWAY, "Server is shutting down")

    async def _every(
        self, interval: float, fn: Callable[[], Coroutine[Any, Any, None] | None]
    ) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                result = fn()
                if result is not None:
                    await result
            except Exception:
                logger.exception("periodic connection check failed")

    async def _ping_staggered(self, interval: float, slices: int) -> None:
        """Every interval/slices seconds, ping the sockets whose hash falls in the
        next slice; any one socket is pinged every `interval` seconds."""
        step = 0
        while True:
            await asyncio.sleep(interval / slices)
            try:
                for conn in [c for c in self.websockets if _slot(c, slices) == step]:
                    conn.heartbeat()
            except Exception:
                logger.exception("periodic connection check failed")
            step = (step + 1) % slices

    def _sse_ping(self) -> None:
        for conn in list(self.streams):
            conn.heartbeat()

    def _expire(self) -> None:
        now = time.time()
        for conn in list(self.websockets) + list(self.streams):
            if conn.expires_at is not None and conn.expires_at <= now:
                conn.close_for(CLOSE_AUTH, "Token expired: send auth with a fresh token")

    async def _check_sessions(self) -> None:
        """Close the sockets whose session ended since the last check (less an overlap
        that covers a socket registered while a check ran, and clock skew between
        nodes); the query is the same size whether 10 or 10,000 sockets are open."""
        now = now_ms()
        since, self._sessions_checked = self._sessions_checked - SESSION_OVERLAP_MS, now
        ended = await self._reads.call(lambda: self._accounts.ended_sessions(since, now))
        if not ended:
            return
        for conn in list(self.websockets) + list(self.streams):
            if conn.session_id in ended:
                conn.close_for(CLOSE_AUTH, "Session revoked")


def _slot(conn: Watched, slices: int) -> int:
    """The ping step of a socket: its identity hash, mixed (objects of one size sit at
    regular addresses, which a plain modulo would bunch into a few steps)."""
    return (hash(conn) * 0x9E3779B1 >> 12) % slices
