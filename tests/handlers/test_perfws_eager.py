"""handlers.eager.run_eagerly: a coroutine run at once, a future only if it waits."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from handlers.eager import run_eagerly

SEEN: contextvars.ContextVar[str | None] = contextvars.ContextVar("seen", default=None)


def test_a_coroutine_that_never_waits_finishes_on_the_spot():
    async def go():
        done: list[str] = []

        async def handler() -> None:
            done.append("ran")

        assert run_eagerly(handler()) is None
        assert done == ["ran"]  # before any loop turn

    asyncio.run(go())


def test_its_exception_is_raised_to_the_caller():
    async def go():
        async def handler() -> None:
            raise ValueError("bad")

        with pytest.raises(ValueError, match="bad"):
            run_eagerly(handler())

    asyncio.run(go())


def test_one_that_waits_runs_to_its_end_in_order_with_context():
    async def go():
        loop = asyncio.get_running_loop()
        steps: list[str] = []
        gate = loop.create_future()

        async def handler() -> None:
            steps.append("first")
            value = await gate
            steps.append(f"got {value} as {SEEN.get()}")
            await asyncio.sleep(0)  # a bare yield
            steps.append("after a turn")
            value = await loop.run_in_executor(None, lambda: "from a thread")
            steps.append(value)

        token = SEEN.set("request-1")
        future = run_eagerly(handler())
        SEEN.reset(token)
        assert future is not None and not future.done()
        assert steps == ["first"]
        gate.set_result(7)
        await future
        assert steps == ["first", "got 7 as request-1", "after a turn", "from a thread"]

    asyncio.run(go())


def test_an_exception_after_waiting_settles_the_future():
    async def go():
        async def handler() -> None:
            await asyncio.sleep(0.01)
            raise KeyError("late")

        future = run_eagerly(handler())
        assert future is not None
        with pytest.raises(KeyError, match="late"):
            await future

    asyncio.run(go())
