"""TX_RETENTION: how much of the tx log (ab_tx) to keep, parsed once at start.

The log is what SSE resumes, server-function conflict checks and the PostgreSQL
commit feed read; none of them needs it for long, but nothing else bounds it. The
value is one or two limits joined by a comma: a duration (`90s`, `30m`, `12h`, `7d`)
and/or a count of commits (`1000000`). A commit is pruned once it is past either one:
older than the duration, or more than the count behind the newest commit.
"""

from __future__ import annotations

import dataclasses
import re

_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_COUNT = re.compile(r"[1-9][0-9]{0,11}")


@dataclasses.dataclass(frozen=True, slots=True)
class TxRetention:
    """At least one of the two is set."""

    max_age_ms: int | None
    """Commits older than this are pruned."""
    max_count: int | None
    """Commits more than this many behind the newest are pruned."""


def parse_tx_retention(raw: str) -> TxRetention:
    """`7d`, `1000000` or `7d,1000000`; ValueError (one line) otherwise."""
    age: int | None = None
    count: int | None = None
    parts = [p.strip().lower() for p in raw.split(",")]
    for part in parts:
        duration = _DURATION.fullmatch(part)
        if duration and age is None:
            age = int(duration[1]) * _UNITS[duration[2]]
        elif _COUNT.fullmatch(part) and count is None:
            count = int(part)
        else:
            raise ValueError(
                "must be a duration (90s, 30m, 12h, 7d), a count of commits (1000000), "
                f"or one of each joined by a comma, got {raw!r}"
            )
    return TxRetention(age, count)
