"""Callbacks and async iteration over a stream of values, shared by the live query,
the connection state, auth and presence."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

_END = object()


class Listeners(Generic[T]):
    """Callbacks for one kind of event; a callback that raises is logged, never breaks
    the client's own loop."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[T], object]] = []
        self._queues: list[asyncio.Queue[Any]] = []
        self.ended = False

    def add(self, callback: Callable[[T], object]) -> Callable[[], None]:
        """Register `callback`; returns the function that removes it."""
        self._callbacks.append(callback)

        def off() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return off

    def emit(self, value: T) -> None:
        for callback in list(self._callbacks):
            try:
                callback(value)
            except Exception:
                logger.exception("actorbase client: a listener raised")
        for queue in self._queues:
            queue.put_nowait(value)

    def end(self) -> None:
        """Finish every iteration (the source closed)."""
        self.ended = True
        for queue in self._queues:
            queue.put_nowait(_END)

    async def iterate(self, first: T | None = None) -> AsyncIterator[T]:
        """Every value from now on (after `first`, if given) until `end`. A slow
        consumer skips to the newest value rather than piling up old ones: each is a
        whole state."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queues.append(queue)
        try:
            if first is not None:
                yield first
            while not self.ended:
                value = await queue.get()
                while not queue.empty() and value is not _END:
                    value = queue.get_nowait()
                if value is _END:
                    return
                yield value
        finally:
            self._queues.remove(queue)
