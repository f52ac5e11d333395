"""Counters behind GET /api/admin/stats, kept as work happens (never a table scan).

A `Meter` counts one kind of work (queries, mutations) and its latency in one-second
slots over the last minute. Each meter has one writer thread (queries: the IOLoop;
mutations: the transactor) and needs no lock: readers on the IOLoop may see a slot
mid-update, which is off by one event at most, never a torn number (the GIL).
`ActiveToday` remembers which users presented a live token since UTC midnight; it is
touched on the IOLoop only. All of it is per process and starts afresh at restart
(`ActiveToday` is seeded from the sessions table at start).
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from store.base import Txn

WINDOW = 60
"""Seconds over which `perSecond` and `avgLatencyMs` are measured."""

RECENT = 10
"""Seconds over which `Meter.recent` measures: short, so the dashboard's charts move."""

BOUNDS_MS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 25, 50, 75, 100, 250, 500, 1000, 2500, 5000)
"""Latency bucket bounds (ms) for the percentiles of `Meter.recent`: a percentile is
reported as the bound of the bucket it falls in (as Prometheus' histogram_quantile
would, without the interpolation)."""


class Meter:
    """How many events, how many in the last minute, and their mean latency."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.total = 0
        self._second = [-1] * WINDOW
        self._count = [0] * WINDOW
        self._seconds = [0.0] * WINDOW
        self._buckets = [[0] * (len(BOUNDS_MS) + 1) for _ in range(WINDOW)]

    def record(self, latency: float) -> None:
        """One event that took `latency` seconds; its writer thread only."""
        now = int(self._clock())
        slot = now % WINDOW
        if self._second[slot] != now:
            self._count[slot] = 0
            self._seconds[slot] = 0.0
            self._buckets[slot] = [0] * (len(BOUNDS_MS) + 1)
            self._second[slot] = now
        self._count[slot] += 1
        self._seconds[slot] += latency
        self._buckets[slot][bisect.bisect_left(BOUNDS_MS, latency * 1000)] += 1
        self.total += 1

    def recent(self) -> dict[str, Any]:
        """`{perSecond, p50Ms, p99Ms}` over the last RECENT seconds (the current one
        included): what the admin dashboard charts."""
        now = int(self._clock())
        counts = [0] * (len(BOUNDS_MS) + 1)
        for slot in range(WINDOW):
            if now - RECENT < self._second[slot] <= now:
                for i, n in enumerate(self._buckets[slot]):
                    counts[i] += n
        total = sum(counts)
        return {
            "perSecond": round(total / RECENT, 3),
            "p50Ms": _percentile(counts, total, 0.5),
            "p99Ms": _percentile(counts, total, 0.99),
        }

    def snapshot(self) -> dict[str, Any]:
        """The seed's `{total, perSecond, avgLatencyMs}`, both rates over the last minute."""
        now = int(self._clock())
        count, seconds = 0, 0.0
        for slot in range(WINDOW):
            if now - WINDOW < self._second[slot] <= now:
                count += self._count[slot]
                seconds += self._seconds[slot]
        return {
            "total": self.total,
            "perSecond": round(count / WINDOW, 3),
            "avgLatencyMs": round(seconds * 1000 / count, 3) if count else 0.0,
        }


def _percentile(counts: list[int], total: int, q: float) -> float:
    """The upper bound (ms) of the bucket holding the q-th event; 0 with no events,
    the largest bound for events beyond it."""
    if not total:
        return 0.0
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= q * total:
            return float(BOUNDS_MS[min(i, len(BOUNDS_MS) - 1)])
    return float(BOUNDS_MS[-1])


def utc_midnight_ms(now: float | None = None) -> int:
    """The start of the current UTC day, ms since epoch."""
    # POSIX time has no leap seconds: every UTC day is 86,400 of its seconds. Called on
    # every authenticated request (ActiveToday), so arithmetic rather than datetime.
    return int((time.time() if now is None else now) // 86_400) * 86_400_000


class ActiveToday:
    """Users active since UTC midnight: a set, emptied when the day turns."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._day = utc_midnight_ms(clock())
        self._users: set[str] = set()

    def seen(self, user_id: str) -> None:
        """`user_id` presented a live token (or signed in) just now."""
        self._roll()
        self._users.add(user_id)

    def seed(self, day: int, user_ids: set[str]) -> None:
        """Add users known from the database to have been active on `day`."""
        self._roll()
        if day == self._day:
            self._users |= user_ids

    def count(self, others: Iterable[str] = ()) -> int:
        """Users active today here, or in `others` (known to the database)."""
        self._roll()
        return len(self._users.union(others))

    def _roll(self) -> None:
        day = utc_midnight_ms(self._clock())
        if day != self._day:
            self._day = day
            self._users = set()


@dataclasses.dataclass
class Stats:
    """The process's counters, shared through the Context."""

    queries: Meter = dataclasses.field(default_factory=Meter)
    requests: Meter = dataclasses.field(default_factory=Meter)
    """Every HTTP request answered (counted where the access log is written)."""
    mutations: Meter = dataclasses.field(default_factory=Meter)
    active_today: ActiveToday = dataclasses.field(default_factory=ActiveToday)


def sessions_since(txn: Txn, since: int) -> set[str]:
    """Users whose session was opened or refreshed since `since` (ms): read once at
    start to seed `ActiveToday`, so a restart does not forget the morning."""
    records = txn.execute(
        "SELECT DISTINCT user_id FROM ab_sessions WHERE created_at >= ? OR last_used_at >= ?",
        (since, since),
    ).fetchall()
    return {r[0] for r in records}


def user_count(txn: Txn) -> int:
    """Every account: one count over ab_users' primary key, per stats request."""
    return int(txn.execute("SELECT count(*) FROM ab_users").fetchone()[0])
