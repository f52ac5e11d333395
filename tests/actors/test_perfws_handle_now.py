"""actors.runtime.handle_now: an ask answered on the spot only when that is what its
turn would do (on the actor's loop, started, stopped not, nothing queued or running)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.runtime import LATER, LoopActor, handle_now
from tests.actors import test_runtime
from tests.actors.test_runtime import Harness, Recorder

harness = test_runtime.harness  # the same loops: a Tornado IOLoop thread, and one of our own

pytestmark = pytest.mark.timeout(60)


class Nested(LoopActor):
    """Asks itself on the spot from inside its own handler."""

    def on_receive(self, message: Any) -> Any:
        return handle_now(self.actor_ref, "inner")


def test_an_idle_actor_answers_at_once_in_order(harness: Harness) -> None:
    async def scenario() -> None:
        ref = Recorder.start()
        assert handle_now(ref, "early") is LATER  # on_start has not run yet
        assert await ref.ask("first", block=False) == "first"
        assert handle_now(ref, "now") == "now"
        with pytest.raises(ValueError, match="asked to fail"):
            handle_now(ref, "raise")
        assert ref.is_alive()
        ref.tell("queued")
        assert handle_now(ref, "behind a queued one") is LATER  # it would jump the queue
        assert await ref.ask("after", block=False) == "after"
        assert await ref.proxy().log == ["on_start", "first", "now", "raise", "queued", "after"]
        # From another thread: never on the spot.
        assert await asyncio.to_thread(handle_now, ref, "thread") is LATER
        await ref.stop(block=False)
        assert handle_now(ref, "stopped") is LATER

    harness.run(scenario)


def test_an_actor_handling_a_message_is_not_entered_again(harness: Harness) -> None:
    async def scenario() -> None:
        ref = Nested.start()
        assert await ref.ask("outer", block=False) is LATER
        assert handle_now(ref, "outer") is LATER
        await ref.stop(block=False)

    harness.run(scenario)
