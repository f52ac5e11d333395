"""The hub: every open WebSocket and SSE stream of this process, their timers, and
each user's share of them (UserLoad).

One periodic task each, on the IOLoop, rather than timers per connection: heartbeats
(WebSocket pings, SSE comment lines), token expiry, and the check that open
connections' sessions still stand. Every SESSION_CHECK_INTERVAL it reads, on the read
pool, the sessions that ended lately (revoked or expired, by any server process on the
same database), ends them in the process's SessionCache (so REST requests with their
tokens are refused from then on) and closes the sockets that hold one. A session this
process revokes ends in the cache at once, and its sockets close at once too.

Heartbeats are staggered: each interval is cut into steps of about HEARTBEAT_STEP, and
each connection is kept in the group of the step its identity hash picks, so 10,000
sockets do not get their pings, and send their pongs, in one burst, and a step touches
only its own group: a sweep over every socket at each step stalled the loop ~10 ms
every 0.6 s at 10,000 sockets, the largest part of a diff's p99 at 1,000 subscribers.
A connection's hash never changes, so each one still gets exactly one heartbeat per
interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Protocol

from actorbase.errors import ResourceExceeded
from actors.periodic import every
from store.accounts import Accounts
from store.base import now_ms
from store.readpool import ReadPool
from store.session_cache import SessionCache

logger = logging.getLogger(__name__)

CLOSE_AUTH = 4001
"""Authentication failed, ended, or never came (the seed's auth-error close)."""

CLOSE_HEARTBEAT = 4002
"""No pong within a ping interval."""

CLOSE_TOO_MANY = 4029
"""Over WS_MAX_CONNECTIONS_PER_USER: the `auth` that would open one more is refused."""

CLOSE_GOING_AWAY = 1001
"""The server is stopping."""

REVOKED = "Session revoked"
"""The close reason of a socket whose session ended (counted apart in /metrics)."""

HEARTBEAT_STEP = 0.05
"""Time between two heartbeat steps, in seconds (longer for an interval of over
MAX_STEPS steps; one step for an interval shorter than this)."""

MAX_STEPS = 1000
"""Groups a heartbeat interval is cut into at most."""

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

    async def settle(self) -> None:
        """Return once everything the client sent has been answered (the server is
        stopping: new work is refused meanwhile)."""


class Hub:
    """Open connections by kind; starts and stops the periodic checks."""

    def __init__(
        self,
        reads: ReadPool,
        accounts: Accounts,
        live: SessionCache,
        ping_interval: float,
        sse_heartbeat: float,
        session_check_interval: float,
        users: UserLoad,
    ) -> None:
        self._reads = reads
        self.users = users
        self._accounts = accounts
        self._live = live
        live.on_end(self._close_ended)
        self._intervals = (ping_interval, sse_heartbeat, session_check_interval)
        self.websockets = Staggered(_steps(ping_interval))
        self.streams = Staggered(_steps(sse_heartbeat))
        self._tasks: list[asyncio.Task[None]] = []
        self._sessions_checked = now_ms()

    def start(self) -> None:
        ping, sse, check = self._intervals
        self._tasks = [
            asyncio.ensure_future(self._heartbeats(ping, self.websockets)),
            asyncio.ensure_future(self._heartbeats(sse, self.streams)),
            asyncio.ensure_future(every(min(check, 1.0), self._expire, "token expiry check")),
            asyncio.ensure_future(every(check, self._check_sessions, "session check")),
        ]

    async def close_all(self, grace: float) -> None:
        """Stop the checks and close every connection with 1001 (the server is
        stopping), each as soon as it has answered what its client sent, or after
        `grace` seconds: a mutate-ok must not go out after the close frame."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(_close_settled(conn, grace) for conn in list(self._all())))

    def _all(self) -> Iterator[Watched]:
        yield from self.websockets
        yield from self.streams

    async def _heartbeats(self, interval: float, conns: Staggered) -> None:
        """Every interval/steps seconds, beat the next group of `conns`: any one
        connection gets a heartbeat every `interval` seconds."""
        while True:
            await asyncio.sleep(interval / conns.steps)
            try:
                for conn in conns.next_group():
                    conn.heartbeat()
            except Exception:
                logger.exception("periodic connection check failed")

    def _expire(self) -> None:
        now = time.time()
        expired = [c for c in self._all() if c.expires_at is not None and c.expires_at <= now]
        for conn in expired:
            conn.close_for(CLOSE_AUTH, "Token expired: send auth with a fresh token")

    async def _check_sessions(self) -> None:
        """Close the sockets whose session ended since the last check (less an overlap
        that covers a socket registered while a check ran, and clock skew between
        nodes); the query is the same size whether 10 or 10,000 sockets are open."""
        now = now_ms()
        since, self._sessions_checked = self._sessions_checked - SESSION_OVERLAP_MS, now
        ended = await self._reads.call(lambda: self._accounts.ended_sessions(since, now))
        self._live.end(ended)  # which calls _close_ended

    def _close_ended(self, ended: set[str]) -> None:
        for conn in [c for c in self._all() if c.session_id in ended]:
            conn.close_for(CLOSE_AUTH, REVOKED)


class UserLoad:
    """Each user's open connections (WebSockets and SSE streams) and live queries on
    this process, held to WS_MAX_CONNECTIONS_PER_USER and MAX_SUBSCRIPTIONS_PER_USER so
    no one user holds unbounded sockets or re-read work. The admin token is not counted
    (its key is None). Charged and released by actors.connection.ConnectionActor, for
    its whole life. Loop thread only."""

    __slots__ = ("_connections", "_max_connections", "_max_subscriptions", "_subscriptions")

    def __init__(self, max_connections: int, max_subscriptions: int) -> None:
        self._max_connections = max_connections
        self._max_subscriptions = max_subscriptions
        self._connections: dict[str, int] = {}
        self._subscriptions: dict[str, int] = {}

    def connect(self, user: str | None) -> None:
        """One more connection of `user`; ResourceExceeded over the cap."""
        _charge(
            self._connections,
            user,
            self._max_connections,
            "Too many connections for this user (at most {} WebSockets and SSE streams)",
        )

    def disconnect(self, user: str | None) -> None:
        _release(self._connections, user, 1)

    def subscribe(self, user: str | None) -> None:
        """One more live query of `user`; ResourceExceeded over the cap."""
        _charge(
            self._subscriptions,
            user,
            self._max_subscriptions,
            "Too many live queries for this user (at most {} over all their connections)",
        )

    def unsubscribe(self, user: str | None, count: int = 1) -> None:
        _release(self._subscriptions, user, count)


def _charge(counts: dict[str, int], user: str | None, cap: int, message: str) -> None:
    if user is None:
        return
    n = counts.get(user, 0)
    if n >= cap:
        raise ResourceExceeded(message.format(cap))
    counts[user] = n + 1


def _release(counts: dict[str, int], user: str | None, count: int) -> None:
    if user is None or count <= 0:
        return
    left = counts.get(user, 0) - count
    if left > 0:
        counts[user] = left
    else:
        counts.pop(user, None)  # a user with nothing open costs no entry


class Staggered:
    """Open connections of one kind, kept in `steps` groups by identity hash, so a
    heartbeat step visits one group and not every connection. Loop thread only."""

    __slots__ = ("_groups", "_next", "steps")

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self._groups: list[set[Watched]] = [set() for _ in range(steps)]
        self._next = 0

    def add(self, conn: Watched) -> None:
        self._group(conn).add(conn)

    def discard(self, conn: Watched) -> None:
        self._group(conn).discard(conn)

    def __iter__(self) -> Iterator[Watched]:
        for group in self._groups:
            yield from group

    def next_group(self) -> list[Watched]:
        """The members of the next step's group (a copy: a heartbeat may close one)."""
        group = self._groups[self._next]
        self._next = (self._next + 1) % self.steps
        return list(group)

    def _group(self, conn: Watched) -> set[Watched]:
        # The identity hash, mixed: objects of one size sit at regular addresses, which
        # a plain modulo would bunch into a few groups.
        return self._groups[(hash(conn) * 0x9E3779B1 >> 12) % self.steps]


async def _close_settled(conn: Watched, grace: float) -> None:
    try:
        await asyncio.wait_for(conn.settle(), grace)
    except TimeoutError:
        logger.warning("closing a connection with answers still owed")
    conn.close_for(CLOSE_GOING_AWAY, "Server is shutting down")


def _steps(interval: float) -> int:
    """Groups for a heartbeat every `interval` seconds: a step every HEARTBEAT_STEP."""
    return max(1, min(MAX_STEPS, int(interval / HEARTBEAT_STEP)))
