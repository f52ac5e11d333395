"""Reconnect and resend delays: exponential with jitter, so clients that lost the
same server do not all come back in the same instant; a wake-up cuts a wait short."""

from __future__ import annotations

import asyncio
import contextlib
import random


class Backoff:
    def __init__(self, base: float = 0.25, cap: float = 15.0) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._wake = asyncio.Event()

    def reset(self) -> None:
        self.attempt = 0

    def next_delay(self) -> float:
        """Half the exponential step plus a random part of the other half."""
        step = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return step / 2 + random.uniform(0, step / 2)

    async def wait(self) -> None:
        """Sleep the next delay, or less if `wake` is called meanwhile."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.next_delay())

    def wake(self) -> None:
        """Retry now (the server answered elsewhere: it is back)."""
        self.reset()
        self._wake.set()
