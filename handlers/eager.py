"""Run a coroutine at once, on the caller's stack, and make it a future only if it waits.

Tornado runs a WebSocket's `on_message` coroutine as a Task, and awaits a second
future wrapped around it before it reads the next frame: a task, two futures and
three loop turns a message, even when the handler never waits (a pong, an `auth`
whose token is cached, a `subscribe` answered from memory). `run_eagerly` runs the
coroutine's first step right away: finished, it costs nothing more; suspended on a
future, the rest is driven step by step as a Task would drive it, and the caller
gets a future of its end to await. (Python 3.12's eager tasks; this runs on 3.11.)

Each later step runs in the context of the callback that resumes it, a copy of the
caller's: context variables set by the caller (the request id) are seen throughout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Future[None] | None:
    """Step `coro` until it first waits: None if it finished (its exception, if it
    raised, propagates), else a future that settles as the coroutine ends."""
    try:
        waited = coro.send(None)
    except StopIteration:
        return None
    done = asyncio.get_running_loop().create_future()
    _Steps(coro, done).wait(waited)
    return done


class _Steps:
    """Drives a suspended coroutine as asyncio.Task does: one step each time the
    future it awaits is done (a bare `yield`, as `asyncio.sleep(0)`: the next turn)."""

    __slots__ = ("_coro", "_done")

    def __init__(self, coro: Coroutine[Any, Any, None], done: asyncio.Future[None]) -> None:
        self._coro = coro
        self._done = done

    def wait(self, waited: Any) -> None:
        if waited is None:
            self._done.get_loop().call_soon(self._step)
            return
        if not getattr(waited, "_asyncio_future_blocking", False):
            self._coro.close()
            self._settle(RuntimeError(f"a coroutine run eagerly yielded {waited!r}"))
            return
        waited._asyncio_future_blocking = False
        waited.add_done_callback(self._wake)

    def _wake(self, _future: asyncio.Future[Any]) -> None:
        self._step()

    def _step(self) -> None:
        try:
            waited = self._coro.send(None)  # the awaited future's result goes in here
        except StopIteration:
            self._settle(None)
        except (Exception, asyncio.CancelledError) as exc:  # the awaiting side gets it
            self._settle(exc)
        else:
            self.wait(waited)

    def _settle(self, exc: BaseException | None) -> None:
        if self._done.cancelled():
            return
        if exc is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(exc)
