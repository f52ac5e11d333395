"""Actor runtimes for the IOLoop process.

`LoopActor` is a pykka actor whose mailbox is drained on one asyncio loop (the Tornado
IOLoop's) instead of on a thread of its own, so a connection, subscription or room actor
costs a few KiB instead of a thread. `CallbackThreadingActor` keeps a thread for actors
that block. Both reply with `CallbackFuture`s, which `actors.bridge` awaits without
blocking the loop. The pykka API (`ActorRef.tell/ask/stop`, proxies, the registry) and its
guarantees are unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

import pykka
from pykka import ActorDeadError, ActorRef, ActorRegistry
from pykka.messages import _ActorStop

if TYPE_CHECKING:
    from pykka._envelope import Envelope
    from pykka._types import OptExcInfo

__all__ = [
    "LATER",
    "CallbackFuture",
    "CallbackThreadingActor",
    "LoopActor",
    "bind_loop",
    "handle_now",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DoneCallback = Callable[["CallbackFuture[Any]"], None]

_BATCH = 64
"""Messages one actor handles before it yields the loop, so a busy actor cannot starve it."""


class _Scheduler:
    """Schedules callbacks on one loop from any thread, one wake-up per burst.

    `call_soon_threadsafe` writes to the loop's self-pipe on every call (a syscall, most of
    the cost of a tell from another thread). Callbacks from other threads are queued here
    instead and handed to the loop by a single wake-up, in the order they came.
    """

    __slots__ = ("_pending", "_woken", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pending: deque[Callable[[], None]] = deque()
        self._woken = False

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop soon; any thread."""
        if asyncio._get_running_loop() is self.loop:
            self.loop.call_soon(callback)
            return
        self._pending.append(callback)
        if not self._woken:
            self._woken = True
            self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        # Cleared before the queue is read: a callback queued after this gets a new wake-up.
        self._woken = False
        pending = self._pending
        for _ in range(len(pending)):
            self.loop.call_soon(pending.popleft())


_scheduler: _Scheduler | None = None


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Run the LoopActors started from now on on `loop`.

    The server calls this once, with the IOLoop's asyncio loop, before starting any
    LoopActor. Actors already started stay on the loop they started on.
    """
    global _scheduler
    _scheduler = _Scheduler(loop)


LATER = object()
"""`handle_now`'s answer when the message must be asked the usual way."""


def handle_now(ref: ActorRef[Any], message: Any) -> Any:
    """Handle `message` at once if that is what an ask would do once its turn came:
    `ref` is a LoopActor of the running loop, started and not stopped, with nothing
    queued or being handled. Returns its reply (raises what its handler raises), with
    no envelope, future or loop turn; else LATER, and nothing was done: ask instead.
    For a caller on the loop that would only await the reply."""
    inbox = ref.actor_inbox
    return inbox.handle_now(message) if isinstance(inbox, _Mailbox) else LATER


class CallbackFuture(pykka.ThreadingFuture[T]):
    """A ThreadingFuture that also calls done-callbacks when it is set.

    Each callback is called exactly once, with the future: on the thread that sets it,
    or at once on the registering thread if it is already set. Callbacks run outside the
    future's lock; one that raises is logged and affects neither the other callbacks nor
    the setter (an actor's reply must not fail because of a waiter).

    Awaiting it does not block the loop, unlike pykka's `Future.__await__`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[DoneCallback] | None = None

    @property
    def has_get_hook(self) -> bool:
        """Computed on `get()` (`map`, `join`, `filter`, `reduce`, `ActorRef.stop`).

        Such a future is never set, so it takes no done-callbacks.
        """
        return self._get_hook is not None

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call `fn(self)` once the future is set; any thread."""
        with self._condition:
            if self._get_hook is not None:
                msg = "a future with a get hook is never set; wait for it with get()"
                raise ValueError(msg)
            if self._result is None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        self._call(fn)

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._run_callbacks()

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        super().set_exception(exc_info)
        self._run_callbacks()

    def __await__(self) -> Generator[Any, None, T]:
        from actors.bridge import to_asyncio  # the bridge imports this module

        return to_asyncio(self).__await__()

    def _run_callbacks(self) -> None:
        with self._condition:
            callbacks, self._callbacks = self._callbacks, None
        for fn in callbacks or ():
            self._call(fn)

    def _call(self, fn: DoneCallback) -> None:
        try:
            fn(self)
        except Exception:
            logger.exception("done-callback %r of %r failed", fn, self)


class CallbackThreadingActor(pykka.ThreadingActor):
    """A ThreadingActor whose replies are CallbackFutures, for actors that block.

    It keeps its own thread; the IOLoop awaits its replies through `actors.bridge`
    without a pool thread.
    """

    @staticmethod
    def _create_future() -> CallbackFuture[Any]:
        return CallbackFuture()


class _LoopFuture(CallbackFuture[T]):
    """Reply future of a LoopActor: only the actor's loop thread sets it.

    A blocking `get()` on that thread could never return, so it raises instead of
    hanging the loop. Other threads may block on it as usual.
    """

    def get(self, *, timeout: float | None = None) -> Any:
        if (
            self._result is None
            and self._get_hook is None
            and (timeout is None or timeout > 0)
            and _scheduler is not None
            and asyncio._get_running_loop() is _scheduler.loop
        ):
            msg = "a blocking get() of a LoopActor reply on its loop deadlocks; await it instead"
            raise RuntimeError(msg)
        return super().get(timeout=timeout)


class _Mailbox:
    """The inbox and the stopped flag of one LoopActor.

    `put` may be called from any thread; everything else runs on the actor's loop
    thread, so messages are handled one at a time, in put order, each to completion.
    Because `ActorRef.is_alive()` reads this same flag, a stopped mailbox is a closed
    mailbox: a put that races the stop is either refused or answered by the teardown,
    never left unanswered.

    The queue is a list read from `_head` on, not a deque: an empty deque keeps a
    64-slot block (760 bytes, for every idle actor), an empty list none. `append` (any
    thread) and `del queue[:n]` (loop thread) are each atomic, so the loop thread only
    ever removes messages it has handled; it does so once they are at least half the
    list, so a backlog costs O(1) per message.
    """

    __slots__ = ("_actor", "_head", "_queue", "_ref", "_scheduled", "_scheduler", "_stopped")

    def __init__(self, scheduler: _Scheduler) -> None:
        self._scheduler = scheduler
        self._queue: list[Envelope[Any] | None] = []
        self._head = 0
        # True until `start`: messages put before on_start has run wait for it.
        self._scheduled = True
        self._stopped = False
        self._actor: LoopActor | None = None
        self._ref: ActorRef[Any] | None = None

    def attach(self, actor: LoopActor) -> None:
        """Hold the actor while it runs (the registry and refs only hold it weakly)."""
        self._actor = actor
        self._ref = actor.actor_ref

    def put(self, envelope: Envelope[Any], /) -> None:
        """Queue a message; any thread.

        A tell to a stopped actor raises ActorDeadError; an ask to one gets ActorDeadError
        on its future, as `ActorRef.ask` does when `is_alive()` is already false.
        """
        if self._stopped:
            error = ActorDeadError(f"{self._ref} not found")
            if envelope.reply_to is None:
                raise error
            envelope.reply_to.set_exception(exc_info=(ActorDeadError, error, None))
            return
        self._queue.append(envelope)
        # Two racing puts may both schedule a drain; drains only run on the loop thread,
        # one after the other, so the extra one is harmless.
        if not self._scheduled:
            self._scheduled = True
            self._scheduler.call_soon(self._drain)

    def is_set(self) -> bool:
        """Whether the actor has stopped (pykka's `actor_stopped.is_set()`)."""
        return self._stopped

    def set(self) -> None:
        """Mark the actor stopped; loop thread only (pykka's `actor_stopped.set()`)."""
        self._stopped = True

    def start(self) -> None:
        """Run on_start, then the messages already queued, on the loop; any thread."""
        self._scheduler.call_soon(self._run_start)

    def _run_start(self) -> None:
        assert self._actor is not None  # only the loop stops it, and only after this
        try:
            self._actor._loop_actor_setup()
        finally:
            self._drain()

    def handle_now(self, message: Any) -> Any:
        """`runtime.handle_now` for this actor; loop thread only."""
        actor = self._actor
        if (
            self._scheduled  # not started, a drain pending, or handling a message now
            or self._stopped
            or actor is None
            or asyncio._get_running_loop() is not self._scheduler.loop
        ):
            return LATER
        self._scheduled = True  # busy, as in a drain: puts meanwhile queue behind it
        try:
            return actor._handle_receive(message)
        finally:
            self._scheduled = False
            if self._stopped or self._head < len(self._queue):
                self._scheduled = True
                self._scheduler.loop.call_soon(self._drain)

    def _take(self) -> Envelope[Any] | None:
        """The next message, or None if there is none; loop thread only."""
        queue, head = self._queue, self._head
        if head == len(queue):
            return None
        envelope, queue[head] = queue[head], None  # handled messages are not kept alive
        self._head = head + 1
        return envelope

    def _drain(self) -> None:
        actor = self._actor
        queue = self._queue
        try:
            if actor is not None:
                for _ in range(_BATCH):
                    if self._stopped:
                        break
                    envelope = self._take()
                    if envelope is None:
                        break
                    actor._loop_actor_handle(envelope)
        finally:
            if self._stopped:
                self._teardown()
            head = self._head
            if head and 2 * head >= len(queue):
                del queue[:head]  # only handled messages: puts append past them meanwhile
                self._head = 0
            # Release the schedule before looking at the queue again: a put that sees
            # `_scheduled` true has already appended, so nothing is left behind.
            self._scheduled = False
            if self._head < len(queue):
                self._scheduled = True
                self._scheduler.loop.call_soon(self._drain)

    def _teardown(self) -> None:
        """Answer what is left as pykka's `_actor_loop_teardown` does; let the actor go."""
        self._actor = None
        while (envelope := self._take()) is not None:
            reply_to = envelope.reply_to
            if reply_to is None:
                continue
            if isinstance(envelope.message, _ActorStop):
                reply_to.set(None)
            else:
                error = ActorDeadError(f"{self._ref} stopped before handling the message")
                reply_to.set_exception(exc_info=(ActorDeadError, error, None))


class LoopActor(pykka.Actor):
    """A pykka actor whose messages are handled on the bound asyncio loop.

    `start()` may be called from any thread (after `bind_loop`). `on_start`, every
    message, `on_stop` and `on_failure` run on the loop thread, one at a time, so the
    handlers must never block: ask other actors with `await actors.bridge.wait(...)`
    from a coroutine, or tell. Messages are handled in the order they were put; a tell
    that raises calls `on_failure` and stops the actor, an ask that raises fails its
    future. Asks left in the mailbox when the actor stops get ActorDeadError.

    `ref.stop()` blocks until the actor has stopped, so call it from another thread;
    on the loop use `ref.stop(block=False)` and await the future.
    """

    actor_inbox: _Mailbox  # type: ignore[assignment]
    actor_stopped: _Mailbox  # type: ignore[assignment]

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        # Not pykka's Actor.__init__: its threading.Event (~1.2 KiB) would be half the
        # actor; the mailbox doubles as the stopped flag.
        self.actor_urn = uuid.uuid4().urn
        self.actor_inbox = self.actor_stopped = self._create_actor_inbox()
        self._actor_ref = ActorRef(self)
        self.actor_inbox.attach(self)

    @staticmethod
    def _create_actor_inbox() -> _Mailbox:
        if _scheduler is None:
            msg = "call actors.runtime.bind_loop() before starting a LoopActor"
            raise RuntimeError(msg)
        return _Mailbox(_scheduler)

    @staticmethod
    def _create_future() -> CallbackFuture[Any]:
        return _LoopFuture()

    def _start_actor_loop(self) -> None:
        self.actor_inbox.start()

    def _loop_actor_setup(self) -> None:
        try:
            self._actor_loop_setup()
        except BaseException as exc:
            self._stop_everything(exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise

    def _loop_actor_handle(self, envelope: Envelope[Any]) -> None:
        """Handle one message exactly as pykka's `_actor_loop_running` does."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                logger.info("Exception returned from %s to caller:", self, exc_info=True)
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException as exc:
            self._stop_everything(exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise

    def _stop_everything(self, exc: BaseException) -> None:
        """Stop this actor and ask all others to stop, as pykka does on a BaseException.

        Unlike pykka, other actors are not waited for (that would block the loop), and
        KeyboardInterrupt and SystemExit propagate, so they still stop the loop's owner.
        """
        logger.debug("%r in %s. Stopping all actors.", exc, self)
        self._stop()
        ActorRegistry.stop_all(block=False)
