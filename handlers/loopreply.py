"""Transactor replies onto the IOLoop, one wake-up per burst.

`asyncio.wrap_future` wakes the loop once per future (a `call_soon_threadsafe`: a
write to the loop's self-pipe on the transactor's thread, a read and a callback on the
loop). A group commit settles its replies together, so here the replies that settle
while a wake-up is pending ride on it: one write and one callback per group instead
of one per mutation. Cancelling the awaiting side cancels the transactor's future, as
with `wrap_future` (a mutation not yet taken is then dropped unapplied).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from typing import Any, TypeVar

T = TypeVar("T")

_Pair = tuple["concurrent.futures.Future[Any]", "asyncio.Future[Any]"]


class _Bridge:
    """The settled futures waiting for one loop's next wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[_Pair] = []

    def wrap(self, future: concurrent.futures.Future[T]) -> asyncio.Future[T]:
        waiter: asyncio.Future[T] = self._loop.create_future()
        waiter.add_done_callback(lambda w: future.cancel() if w.cancelled() else None)
        future.add_done_callback(lambda f: self._settled(f, waiter))
        return waiter

    def _settled(self, future: concurrent.futures.Future[Any], waiter: asyncio.Future[Any]) -> None:
        with self._lock:
            self._pending.append((future, waiter))
            first = len(self._pending) == 1
        if first:
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        for future, waiter in batch:
            if waiter.done():
                continue
            if future.cancelled():
                waiter.cancel()
            elif (exc := future.exception()) is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(future.result())


_bridges: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Bridge] = (
    weakref.WeakKeyDictionary()
)


def wrap(future: concurrent.futures.Future[T]) -> asyncio.Future[T]:
    """`asyncio.wrap_future` for the running loop, waking it once per burst."""
    loop = asyncio.get_running_loop()
    bridge = _bridges.get(loop)
    if bridge is None:
        bridge = _bridges[loop] = _Bridge(loop)
    return bridge.wrap(future)
