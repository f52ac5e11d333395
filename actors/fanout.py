"""Fan-out in chunks: one frame for thousands of sockets must not hold the loop.

Handing a frame to a socket costs ~20 µs on a 2-core box, most of it the kernel's
loopback send: 200 ms for 10,000 members in one callback, during which no request,
pong or other diff is served. A `FanOut` hands frames out for at most one turn
(FANOUT_TURN seconds), then yields the loop and goes on at its next turn. Its frames
keep their order: every member sees the frames it is in in the order they were handed
over, because a frame starts only after the one before it reached all of its members.
Loop thread only.

The default turn (50 ms) is long on purpose: yielding every 256 members (~5 ms) made
a 10,000-member fan-out cost twice the CPU on both ends (every pause lets the
receivers go idle, and the next send must wake them again), so it fell behind 5 diffs
a second and p50 went from 0.1 s to 1 s.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

CHUNK = 64
"""Members served between two looks at the clock; also the most `send` serves at once
without queueing."""


class _Job(Generic[T]):
    __slots__ = ("deliver", "next", "targets")

    def __init__(self, targets: tuple[T, ...], deliver: Callable[[T], None]) -> None:
        self.targets = targets
        self.deliver = deliver
        self.next = 0


class FanOut(Generic[T]):
    """The frames one actor is handing to its members, in order."""

    __slots__ = ("_queue", "_scheduled", "_turn")

    def __init__(self, turn: float) -> None:
        self._turn = turn
        # Made on first use: most live queries never fan out to more than CHUNK, and an
        # empty deque costs 600 bytes on each of 10,000 subscriptions.
        self._queue: deque[_Job[T]] | None = None
        self._scheduled = False

    def send(self, targets: Sequence[T], deliver: Callable[[T], None]) -> None:
        """Call `deliver(target)` for each of `targets` (as they are now), after
        everything handed over before; at once while nothing waits and it is small."""
        if not self._queue and len(targets) <= CHUNK:
            for target in targets:
                deliver(target)
            return
        if targets:
            if self._queue is None:
                self._queue = deque()
            self._queue.append(_Job(tuple(targets), deliver))
            if not self._scheduled:
                self._run()

    def replace(self, targets: Sequence[T], deliver: Callable[[T], None]) -> None:
        """Like `send`, for a frame that makes the ones still waiting moot (a room's
        whole peer list): members not reached yet get only this one."""
        self._queue = None
        self.send(targets, deliver)

    def then(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once everything handed over before has reached its members
        (at once if nothing waits), so an actor can hold back its next frame until then."""
        if not self._queue:
            callback()
            return
        self._queue.append(_Job((None,), lambda _: callback()))  # type: ignore[arg-type]

    def cancel(self) -> None:
        """Hand over nothing more (the actor stopped)."""
        self._queue = None

    def _run(self) -> None:
        self._scheduled = False
        queue = self._queue
        deadline = time.monotonic() + self._turn
        while queue and queue is self._queue:
            job = queue[0]
            start = job.next
            end = job.next = min(len(job.targets), start + CHUNK)
            deliver = job.deliver
            for target in job.targets[start:end]:
                deliver(target)
            if end == len(job.targets) and queue and queue[0] is job:
                queue.popleft()
            if time.monotonic() >= deadline:
                break
        if self._queue:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)
