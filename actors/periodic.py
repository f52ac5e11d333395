"""A task that calls a function every so often on the loop, for the server's timers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def every(interval: float, fn: Callable[[], Awaitable[object] | None], what: str) -> None:
    """Call `fn` (awaiting what it returns, if anything) every `interval` seconds until
    cancelled. A call that raises is logged as `what` and the next one still comes."""
    while True:
        await asyncio.sleep(interval)
        try:
            result = fn()
            if result is not None:
                await result
        except Exception:
            logger.exception("%s failed", what)
