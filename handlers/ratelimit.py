"""Per-client token buckets behind the X-RateLimit-* headers and 429 RATE_LIMITED.

Only the IOLoop thread touches a limiter, so it needs no lock.
"""

from __future__ import annotations

import dataclasses
import math
import time


@dataclasses.dataclass(slots=True)
class Verdict:
    """What the headers say: the budget, what is left, when it is full again
    (Unix seconds), and when the next request may come if none is left."""

    limit: int
    remaining: int
    reset: int
    retry_after: int | None


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class RateLimiter:
    """`limit` requests per `window` seconds per key, refilled continuously."""

    _PRUNE_AT = 50_000

    def __init__(self, limit: int, window: float, clock=time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._rate = limit / window if limit else 0.0
        self._buckets: dict[str, _Bucket] = {}
        self._clock = clock

    def take(self, key: str) -> Verdict:
        """Spend one token for `key` if there is one."""
        wall = time.time()
        if not self.limit:
            return Verdict(0, 0, int(wall), None)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._PRUNE_AT:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(self.limit), now)
        else:
            bucket.tokens = min(self.limit, bucket.tokens + (now - bucket.stamp) * self._rate)
            bucket.stamp = now
        retry_after = None
        if bucket.tokens >= 1:
            bucket.tokens -= 1
        else:
            retry_after = max(1, math.ceil((1 - bucket.tokens) / self._rate))
        reset = math.ceil(wall + (self.limit - bucket.tokens) / self._rate)
        return Verdict(self.limit, int(bucket.tokens), reset, retry_after)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled: they hold no information."""
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.stamp) * self._rate >= self.limit
        ]
        for key in full:
            del self._buckets[key]
