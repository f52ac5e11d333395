"""Per-client token buckets behind the X-RateLimit-* headers and 429 RATE_LIMITED.

One mechanism, several named buckets (`RateLimits`): each handler class names its
policy (`rate_policy`), and the policy says which buckets a request spends and what
keys them. Only the IOLoop thread touches a limiter, so it needs no lock, and no
database is involved.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.settings import Settings


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


POLICIES: dict[str, tuple[tuple[str, str], ...]] = {
    "api": (("api", "caller"),),
    "auth": (("auth_ip", "ip"), ("auth_email", "email")),
    "mfa": (("mfa", "mfaToken"), ("auth_ip", "ip")),
    "upload": (("upload", "caller"),),
}
"""Each handler's `rate_policy` → the named buckets it spends, each keyed by: `caller`
(the user, the admin, else the IP), `ip`, or a field of the JSON body (`email`,
lowercased, and `mfaToken`; a request without it spends only its other buckets). MFA
verify spends the address's sign-in budget too: one address guessing codes across
many mfaTokens is bounded."""


class RateLimits:
    """The named buckets behind the policies: one `RateLimiter` each, IOLoop only."""

    def __init__(self, budgets: dict[str, int], window: float) -> None:
        self._buckets = {name: RateLimiter(limit, window) for name, limit in budgets.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        s = settings
        return cls(
            {
                "api": s.rate_limit,
                "auth_ip": s.auth_rate_limit,
                "auth_email": s.auth_email_rate_limit,
                "mfa": s.mfa_rate_limit,
                "upload": s.upload_rate_limit,
            },
            s.rate_limit_window,
        )

    def take(self, spends: list[tuple[str, str]]) -> Verdict:
        """Spend one token from each (bucket, key). The verdict is the refusal that
        waits longest if any bucket refuses, else the bucket with least left: the one
        a client must watch."""
        if len(spends) == 1:  # most policies: that bucket's verdict is the answer
            bucket, key = spends[0]
            return self._buckets[bucket].take(key)
        verdicts = [self._buckets[bucket].take(key) for bucket, key in spends]
        refused = [v for v in verdicts if v.retry_after is not None]
        if refused:
            return max(refused, key=lambda v: v.retry_after or 0)
        return min(verdicts, key=lambda v: (v.remaining if v.limit else math.inf, v.reset))
