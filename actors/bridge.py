"""Await pykka futures on the asyncio loop without blocking it.

pykka's own `Future.__await__` calls the blocking `get()` on the loop thread. Here a
`CallbackFuture` (the replies of LoopActor and CallbackThreadingActor) settles the asyncio
future from its done-callback, with no thread involved. Any other pykka future (a plain
ThreadingActor's reply, or a future computed by a get hook such as `ref.stop()` or
`future.map()`) is waited for on a small shared thread pool.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import pykka

from actors.runtime import CallbackFuture

__all__ = ["ask", "to_asyncio", "wait"]

T = TypeVar("T")

# Threads are created on demand, up to max_workers, and reused. A cancelled wait keeps
# its thread until the pykka future settles; stopping the actor settles it.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pykka-wait")


def to_asyncio(future: pykka.Future[T]) -> asyncio.Future[T]:
    """An asyncio future of the running loop that settles as `future` does.

    Call it on the loop thread. The result is set on the loop thread; cancelling it only
    stops the waiting, not the actor's work.
    """
    loop = asyncio.get_running_loop()
    if isinstance(future, CallbackFuture) and not future.has_get_hook:
        result: asyncio.Future[T] = loop.create_future()
        future.add_done_callback(partial(_on_done, loop, result))
        return result
    return loop.run_in_executor(_pool, future.get)


async def wait(future: pykka.Future[T]) -> T:
    """Await a pykka future without blocking the loop; raises what `future.get()` raises."""
    return await to_asyncio(future)


async def ask(ref: pykka.ActorRef[Any], message: Any) -> Any:
    """`ref.ask(message)` without blocking the loop."""
    return await to_asyncio(ref.ask(message, block=False))


def _on_done(
    loop: asyncio.AbstractEventLoop, result: asyncio.Future[T], future: CallbackFuture[T]
) -> None:
    # Called on the thread that set `future`: a LoopActor reply is set on the loop thread
    # itself, which then needs no call_soon_threadsafe.
    if asyncio._get_running_loop() is loop:
        _settle(result, future)
    else:
        loop.call_soon_threadsafe(_settle, result, future)


def _settle(result: asyncio.Future[T], future: CallbackFuture[T]) -> None:
    if result.cancelled():
        return
    try:
        value = future.get(timeout=0)  # already set: does not block
    except Exception as exc:
        result.set_exception(exc)
    else:
        result.set_result(value)
