"""The loop runtime keeps pykka's guarantees: on a Tornado IOLoop running in a thread of its
own (as in the server), and on an asyncio loop run by the test thread itself.

Timeouts below only bound a hang; no assertion depends on how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pykka
import pytest
from pykka import ActorDeadError, ActorRef, ActorRegistry
from pykka._envelope import Envelope
from tornado.ioloop import IOLoop

from actors import bridge, runtime
from actors.runtime import CallbackFuture, CallbackThreadingActor, LoopActor, bind_loop

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")

LIVENESS = 30.0
"""Seconds before a scenario that should finish is declared hung."""


# --- loops -------------------------------------------------------------------------------


class TornadoThread:
    """A Tornado IOLoop running in a background thread, as the server runs it."""

    def __init__(self) -> None:
        started = threading.Event()
        self._io_loop: IOLoop | None = None

        def serve() -> None:
            io_loop = IOLoop()
            self._io_loop = io_loop
            self.loop: asyncio.AbstractEventLoop = io_loop.asyncio_loop  # type: ignore[attr-defined]
            self.thread_id = threading.get_ident()
            io_loop.add_callback(started.set)
            io_loop.start()
            io_loop.close()

        # A daemon, so that a loop hung by a failing test cannot hang the test run too.
        self._thread = threading.Thread(target=serve, name="test-ioloop", daemon=True)
        self._thread.start()
        assert started.wait(LIVENESS)

    def run(self, scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(scenario(), self.loop).result(LIVENESS)

    def close(self) -> None:
        assert self._io_loop is not None
        self._io_loop.add_callback(self._io_loop.stop)
        self._thread.join(LIVENESS)
        assert not self._thread.is_alive()


class OwnLoop:
    """An asyncio loop on the test thread; it runs only while a scenario runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread_id = threading.get_ident()

    def run(self, scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(scenario(), LIVENESS))

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


Harness = TornadoThread | OwnLoop


def _stop_all(refs: list[ActorRef[Any]]) -> None:
    for ref in refs:
        ref.stop(timeout=LIVENESS)  # bounded: a hung loop must not hang the test run's exit


@pytest.fixture(params=["tornado-thread", "own-loop"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """A bound loop; the actors a test leaves running are stopped, then the loop."""
    h: Harness = TornadoThread() if request.param == "tornado-thread" else OwnLoop()
    bind_loop(h.loop)
    before = set(ActorRegistry.get_all())
    yield h
    leftovers = [ref for ref in ActorRegistry.get_all() if ref not in before]

    async def stop_leftovers() -> None:
        # ref.stop() blocks, so not on the loop; the loop must run to handle the stops.
        await asyncio.to_thread(_stop_all, leftovers)

    h.run(stop_leftovers)
    h.close()


# --- actors ------------------------------------------------------------------------------


class Recorder(LoopActor):
    """Appends what it handles to `log`, and notes threads and overlapping handlers."""

    def __init__(self, log: list[Any] | None = None) -> None:
        super().__init__()
        self.log: list[Any] = [] if log is None else log
        self.threads: set[int] = set()
        self.active = 0
        self.max_active = 0

    def on_start(self) -> None:
        self.threads.add(threading.get_ident())
        self.log.append("on_start")

    def on_stop(self) -> None:
        self.log.append("on_stop")

    def on_receive(self, message: Any) -> Any:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.threads.add(threading.get_ident())
        time.sleep(0)  # let other threads run in the middle of a message
        self.log.append(message)
        self.active -= 1
        if message == "raise":
            raise ValueError("asked to fail")
        return message

    def snapshot(self) -> tuple[list[Any], set[int], int]:
        return list(self.log), set(self.threads), self.max_active


class SendsToItselfInInit(Recorder):
    def __init__(self, log: list[Any]) -> None:
        super().__init__(log)
        self.actor_ref.tell("from __init__")


class Fragile(LoopActor):
    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self.log = log

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, BaseException):
            raise message
        self.log.append(message)
        return message

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.log.append(("on_failure", exception_type, str(exception_value), threading.get_ident()))

    def on_stop(self) -> None:
        self.log.append("on_stop")


class Counter(LoopActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def add(self, n: int) -> int:
        self.count += n
        return self.count


class Tracked(LoopActor):
    def __init__(self, sink: list[weakref.ref[LoopActor]]) -> None:
        super().__init__()
        sink.append(weakref.ref(self))


class Gated:
    """Replies whether `gate` opened within the liveness bound (False means it did not)."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def on_receive(self, message: Any) -> Any:
        if message == "raise":
            raise KeyError("threaded failure")
        return self.gate.wait(LIVENESS / 3)


class GatedThreadingActor(Gated, pykka.ThreadingActor):
    pass


class GatedCallbackActor(Gated, CallbackThreadingActor):
    pass


def _handled(log: list[Any]) -> list[Any]:
    return [entry for entry in log if entry not in ("on_start", "on_stop")]


# --- one at a time, in order, on the loop --------------------------------------------------


def test_messages_from_many_threads_are_handled_one_at_a_time_in_order(harness: Harness) -> None:
    senders, per_sender = 8, 200

    async def scenario() -> tuple[list[Any], set[int], int]:
        ref = Recorder.start()

        def send(sender: int) -> None:
            for seq in range(per_sender):
                ref.tell((sender, seq))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
        for thread in threads:
            thread.start()
        await asyncio.to_thread(lambda: [thread.join() for thread in threads])
        return await ref.proxy().snapshot()

    log, threads, max_active = harness.run(scenario)
    handled = _handled(log)
    assert len(handled) == senders * per_sender
    assert max_active == 1
    assert threads == {harness.thread_id}
    for sender in range(senders):
        assert [seq for s, seq in handled if s == sender] == list(range(per_sender))


class Tally(LoopActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message == "count":
            return self.count
        self.count += 1
        return None


def test_tells_from_many_threads_to_many_actors_all_arrive(harness: Harness) -> None:
    actors, senders, rounds = 300, 6, 10

    async def scenario() -> list[int]:
        refs = [Tally.start() for _ in range(actors)]

        def send() -> None:
            for _ in range(rounds):
                for ref in refs:
                    ref.tell("one")

        threads = [threading.Thread(target=send) for _ in range(senders)]
        for thread in threads:
            thread.start()
        await asyncio.to_thread(lambda: [thread.join() for thread in threads])
        return await asyncio.gather(*(bridge.ask(ref, "count") for ref in refs))

    assert harness.run(scenario) == [senders * rounds] * actors


def test_blocking_asks_from_many_threads_are_all_answered(harness: Harness) -> None:
    # Each ask is the last put for a while, so a lost wake-up would leave it unanswered.
    senders, asks = 4, 500

    async def scenario() -> list[list[int]]:
        refs = [Tally.start() for _ in range(senders)]

        def ask_one_by_one(ref: ActorRef[Tally]) -> list[int]:
            replies = []
            for _ in range(asks):
                ref.tell("one")
                replies.append(ref.ask("count", timeout=LIVENESS))
            return replies

        return await asyncio.gather(*(asyncio.to_thread(ask_one_by_one, ref) for ref in refs))

    assert harness.run(scenario) == [list(range(1, asks + 1))] * senders


def test_tells_and_asks_are_handled_in_put_order_across_batches(harness: Harness) -> None:
    count = 500  # several drain batches

    async def scenario() -> tuple[list[Any], list[Any]]:
        log: list[Any] = []
        ref = Recorder.start(log)
        futures = []
        for i in range(count):
            if i % 3 == 0:
                futures.append(ref.ask(i, block=False))
            else:
                ref.tell(i)
        replies = [await bridge.wait(future) for future in futures]
        return log, replies

    log, replies = harness.run(scenario)
    assert log == ["on_start", *range(count)]
    assert replies == list(range(0, count, 3))


def test_a_busy_actor_yields_the_loop_between_batches(harness: Harness) -> None:
    async def scenario() -> tuple[int, int]:
        log: list[Any] = []
        ref = Recorder.start(log)
        await bridge.ask(ref, "started")
        for i in range(1000):
            ref.tell(i)
        seen: list[int] = []
        asyncio.get_running_loop().call_soon(lambda: seen.append(len(_handled(log))))
        await bridge.ask(ref, "done")
        return seen[0], len(_handled(log))

    handled_when_callback_ran, handled_in_all = harness.run(scenario)
    assert 1 < handled_when_callback_ran < 1001
    assert handled_in_all == 1002


class Payload:
    """A message that can be watched with a weakref."""


class Watcher(LoopActor):
    """Answers whether the object behind a weakref is gone."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, weakref.ref):
            return message() is None
        return None


def test_a_handled_message_is_released_while_a_backlog_remains(harness: Harness) -> None:
    async def scenario() -> tuple[bool, int]:
        ref = Watcher.start()
        await bridge.ask(ref, "started")
        # No await in between: all of this is queued before the actor handles any of it,
        # so the probe runs in the batch after the payload's, with many messages behind it.
        payload = Payload()
        watched = weakref.ref(payload)
        ref.tell(payload)
        del payload
        for i in range(runtime._BATCH):
            ref.tell(i)
        probe = ref.ask(watched, block=False)
        for i in range(4 * runtime._BATCH):
            ref.tell(i)
        released = await bridge.wait(probe)
        await bridge.ask(ref, "last")
        return released, len(ref.actor_inbox._queue)

    # An idle mailbox keeps no storage: once drained, its queue is an empty list.
    assert harness.run(scenario) == (True, 0)


def test_on_start_runs_on_the_loop_before_any_message(harness: Harness) -> None:
    per_thread = 20

    async def scenario() -> list[tuple[list[Any], set[int], int]]:
        refs: list[ActorRef[Any]] = []

        def start_and_tell() -> None:
            for _ in range(per_thread):
                ref = Recorder.start()
                ref.tell("first")
                refs.append(ref)

        refs.append(SendsToItselfInInit.start([]))
        threads = [threading.Thread(target=start_and_tell) for _ in range(4)]
        for thread in threads:
            thread.start()
        start_and_tell()  # and from the loop thread itself
        await asyncio.to_thread(lambda: [thread.join() for thread in threads])
        return [await ref.proxy().snapshot() for ref in refs]

    snapshots = harness.run(scenario)
    assert len(snapshots) == 1 + 5 * per_thread
    assert snapshots[0][0] == ["on_start", "from __init__"]
    for log, threads, _ in snapshots[1:]:
        assert log == ["on_start", "first"]
        assert threads == {harness.thread_id}


def test_starting_without_a_bound_loop_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_scheduler", None)
    with pytest.raises(RuntimeError, match="bind_loop"):
        Recorder.start()


# --- ask, proxy --------------------------------------------------------------------------


def test_ask_returns_the_result_or_raises_the_error_and_the_actor_lives_on(
    harness: Harness,
) -> None:
    async def scenario() -> None:
        ref = Recorder.start()
        assert await bridge.ask(ref, "hello") == "hello"
        with pytest.raises(ValueError, match="asked to fail"):
            await bridge.ask(ref, "raise")
        assert ref.is_alive()
        assert await ref.ask("awaited directly", block=False) == "awaited directly"
        # A blocking ask from another thread.
        assert await asyncio.to_thread(ref.ask, "blocking") == "blocking"
        with pytest.raises(ValueError, match="asked to fail"):
            await asyncio.to_thread(ref.ask, "raise")
        assert ref.is_alive()

    harness.run(scenario)


def test_proxy_calls_methods_and_gets_and_sets_attributes(harness: Harness) -> None:
    async def scenario() -> None:
        proxy = Counter.start().proxy()
        assert await proxy.add(2) == 2
        assert await proxy.count == 2
        # Setting an attribute through a proxy blocks until done: not on the loop.
        await asyncio.to_thread(setattr, proxy, "count", 10)
        assert await bridge.wait(proxy.count) == 10
        proxy.add.defer(5)
        assert await proxy.count == 15

    harness.run(scenario)


def test_a_blocking_get_of_a_loop_reply_on_the_loop_raises_instead_of_deadlocking(
    harness: Harness,
) -> None:
    async def scenario() -> None:
        ref = Recorder.start()
        with pytest.raises(RuntimeError, match="deadlock"):
            ref.ask("blocking on the loop")
        with pytest.raises(RuntimeError, match="deadlock"):
            ref.ask("with a timeout", timeout=1)
        # The messages were put nonetheless, and are handled in order.
        assert await bridge.ask(ref, "next") == "next"
        log, _, _ = await ref.proxy().snapshot()
        assert log == ["on_start", "blocking on the loop", "with a timeout", "next"]

    harness.run(scenario)


# --- stopping ----------------------------------------------------------------------------


def test_asks_queued_behind_a_stop_get_actor_dead_error(harness: Harness) -> None:
    async def scenario() -> list[Any]:
        log: list[Any] = []
        ref = Recorder.start(log)
        # No await in between: all of this is queued before the actor handles any of it.
        first = ref.ask("a", block=False)
        stopping = ref.stop(block=False)
        late = ref.ask("b", block=False)
        ref.tell("c")
        stopping_again = ref.stop(block=False)
        assert await bridge.wait(first) == "a"
        assert await bridge.wait(stopping) is True
        with pytest.raises(ActorDeadError, match="stopped before handling"):
            await bridge.wait(late)
        assert await bridge.wait(stopping_again) is True
        assert not ref.is_alive()
        assert ref not in ActorRegistry.get_all()
        return log

    assert harness.run(scenario) == ["on_start", "a", "on_stop"]


def test_a_stopped_actor_refuses_messages(harness: Harness) -> None:
    async def scenario() -> None:
        ref = Recorder.start()
        assert await asyncio.to_thread(ref.stop) is True  # blocking stop, from another thread
        with pytest.raises(ActorDeadError):
            ref.tell("too late")
        # The inbox itself refuses, which closes the race between is_alive() and put:
        with pytest.raises(ActorDeadError):
            ref.actor_inbox.put(Envelope("too late"))
        reply: CallbackFuture[Any] = CallbackFuture()
        ref.actor_inbox.put(Envelope("too late", reply_to=reply))
        with pytest.raises(ActorDeadError):
            await bridge.wait(reply)
        with pytest.raises(ActorDeadError):
            await bridge.ask(ref, "too late")
        assert await bridge.wait(ref.stop(block=False)) is False

    harness.run(scenario)


def test_every_ask_racing_a_stop_is_answered(harness: Harness) -> None:
    senders, window, after_death = 4, 16, 50

    async def scenario() -> tuple[list[list[Any]], list[Any]]:
        log: list[Any] = []
        ref = Recorder.start(log)
        futures: list[list[pykka.Future[Any]]] = [[] for _ in range(senders)]
        first_put = threading.Barrier(senders + 1)

        def send(sender: int) -> None:
            sent = futures[sender]
            dead_for = 0
            while dead_for < after_death:
                seq = len(sent)
                if seq >= window:  # keep the mailbox short, so the stop comes soon
                    with contextlib.suppress(ActorDeadError):
                        sent[seq - window].get(timeout=LIVENESS)
                dead_for += not ref.is_alive()
                sent.append(ref.ask((sender, seq), block=False))
                if seq == 0:
                    first_put.wait()

        threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
        for thread in threads:
            thread.start()
        await asyncio.to_thread(first_put.wait)
        await asyncio.gather(*(bridge.wait(f[0]) for f in futures))
        ref.stop(block=False)
        await asyncio.to_thread(lambda: [thread.join() for thread in threads])
        outcomes = [
            await asyncio.gather(*(bridge.wait(f) for f in fs), return_exceptions=True)
            for fs in futures
        ]
        return outcomes, log

    outcomes, log = harness.run(scenario)
    handled = _handled(log)
    for sender, results in enumerate(outcomes):
        answered = [r for r in results if not isinstance(r, ActorDeadError)]
        # Each sender's handled asks are a prefix of what it sent; all later ones are dead.
        assert answered == [(sender, seq) for seq in range(len(answered))]
        assert all(isinstance(r, ActorDeadError) for r in results[len(answered) :])
        assert len(results) - len(answered) >= after_death
        assert [m for m in handled if m[0] == sender] == answered


def test_an_error_in_a_tell_calls_on_failure_and_stops_the_actor(harness: Harness) -> None:
    async def scenario() -> list[Any]:
        log: list[Any] = []
        ref = Fragile.start(log)
        ref.tell(ValueError("boom"))
        late = ref.ask("after", block=False)
        with pytest.raises(ActorDeadError):
            await bridge.wait(late)
        assert not ref.is_alive()
        assert ref not in ActorRegistry.get_all()
        return log

    # on_failure replaces on_stop, as in pykka.
    assert harness.run(scenario) == [("on_failure", ValueError, "boom", harness.thread_id)]


class Fatal(BaseException):
    pass


def test_a_base_exception_stops_the_actor_and_asks_all_to_stop_without_blocking(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_all_calls: list[dict[str, Any]] = []
    monkeypatch.setattr(ActorRegistry, "stop_all", lambda **kw: stop_all_calls.append(kw))

    async def scenario() -> list[Any]:
        log: list[Any] = []
        ref = Fragile.start(log)
        bystander = Recorder.start()
        ref.tell(Fatal())
        late = ref.ask("after", block=False)
        with pytest.raises(ActorDeadError):
            await bridge.wait(late)
        assert not ref.is_alive()
        # The loop carries on.
        assert await bridge.ask(bystander, "still here") == "still here"
        return log

    assert harness.run(scenario) == ["on_stop"]
    assert stop_all_calls == [{"block": False}]


def test_keyboard_interrupt_in_an_actor_still_stops_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop_all_calls: list[dict[str, Any]] = []
    monkeypatch.setattr(ActorRegistry, "stop_all", lambda **kw: stop_all_calls.append(kw))
    loop = asyncio.new_event_loop()
    try:
        bind_loop(loop)
        log: list[Any] = []
        ref = Fragile.start(log)
        ref.tell(KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
        assert not ref.is_alive()
        assert log == ["on_stop"]
        assert stop_all_calls == [{"block": False}]
    finally:
        loop.close()


def test_a_stopped_actor_is_released_while_refs_remain(harness: Harness) -> None:
    async def scenario() -> tuple[bool, bool]:
        sink: list[weakref.ref[LoopActor]] = []
        ref = Tracked.start(sink)
        await bridge.ask(ref, "hello")
        gc.collect()
        alive_while_running = sink[0]() is not None
        await bridge.wait(ref.stop(block=False))
        gc.collect()
        released_after_stop = sink[0]() is None
        assert ref is not None  # the ref is still held
        return alive_while_running, released_after_stop

    assert harness.run(scenario) == (True, True)


# --- the bridge --------------------------------------------------------------------------


class CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(*args, **kwargs)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingPool]:
    counting = CountingPool()
    monkeypatch.setattr(bridge, "_pool", counting)
    yield counting
    counting.shutdown()


@pytest.mark.parametrize(
    ("actor_class", "uses_pool"),
    [(GatedCallbackActor, False), (GatedThreadingActor, True)],
)
def test_the_bridge_awaits_a_threaded_reply_without_blocking_the_loop(
    harness: Harness, pool: CountingPool, actor_class: type[pykka.Actor], uses_pool: bool
) -> None:
    async def scenario() -> Any:
        gate = threading.Event()
        ref = actor_class.start(gate)
        reply = ref.ask("did the loop open the gate?", block=False)
        # Runs only if the loop keeps running while the reply is awaited.
        asyncio.get_running_loop().call_soon(gate.set)
        return await bridge.wait(reply)

    assert harness.run(scenario) is True
    assert (pool.submitted > 0) == uses_pool


def test_awaiting_a_callback_future_directly_does_not_block_the_loop(
    harness: Harness, pool: CountingPool
) -> None:
    async def scenario() -> Any:
        gate = threading.Event()
        ref = GatedCallbackActor.start(gate)
        reply = ref.ask("did the loop open the gate?", block=False)
        asyncio.get_running_loop().call_soon(gate.set)
        return await reply

    assert harness.run(scenario) is True
    assert pool.submitted == 0


@pytest.mark.parametrize("actor_class", [GatedCallbackActor, GatedThreadingActor])
def test_the_bridge_raises_the_actors_error(
    harness: Harness, actor_class: type[pykka.Actor]
) -> None:
    async def scenario() -> None:
        ref = actor_class.start(threading.Event())
        with pytest.raises(KeyError, match="threaded failure"):
            await bridge.ask(ref, "raise")

    harness.run(scenario)


def test_the_bridge_awaits_a_loop_actor_reply_without_a_thread(
    harness: Harness, pool: CountingPool
) -> None:
    async def scenario() -> Any:
        ref = Recorder.start()
        return await bridge.ask(ref, "hello")

    assert harness.run(scenario) == "hello"
    assert pool.submitted == 0


def test_the_bridge_awaits_futures_computed_by_a_get_hook(harness: Harness) -> None:
    async def scenario() -> None:
        ref = Recorder.start()
        assert await bridge.wait(ref.ask(2, block=False).map(lambda v: v * 10)) == 20
        assert await bridge.wait(ref.stop(block=False)) is True
        assert await bridge.wait(ref.stop(block=False)) is False

    harness.run(scenario)


def test_a_thousand_loop_actors_start_no_thread(harness: Harness) -> None:
    async def scenario() -> tuple[set[threading.Thread], set[threading.Thread], list[int]]:
        # Compared as sets: threads of earlier tests' actors may still be exiting.
        before = set(threading.enumerate())
        refs = [Recorder.start() for _ in range(1000)]
        replies = await asyncio.gather(*(bridge.ask(ref, i) for i, ref in enumerate(refs)))
        return before, set(threading.enumerate()), replies

    before, after, replies = harness.run(scenario)
    assert replies == list(range(1000))
    assert after - before == set()


# --- CallbackFuture ----------------------------------------------------------------------


def test_callbacks_run_once_on_the_setting_thread() -> None:
    future: CallbackFuture[int] = CallbackFuture()
    calls: list[tuple[CallbackFuture[int], int]] = []
    future.add_done_callback(lambda f: calls.append((f, threading.get_ident())))
    setter = threading.Thread(target=future.set, args=(7,))
    setter.start()
    setter.join()
    assert calls == [(future, setter.ident)]
    assert future.get() == 7


def test_a_callback_added_after_set_runs_at_once() -> None:
    future: CallbackFuture[int] = CallbackFuture()
    future.set(1)
    calls: list[int] = []
    future.add_done_callback(lambda f: calls.append(f.get()))
    assert calls == [1]


def test_set_exception_runs_callbacks() -> None:
    future: CallbackFuture[int] = CallbackFuture()
    calls: list[CallbackFuture[int]] = []
    future.add_done_callback(calls.append)
    try:
        raise LookupError("nope")
    except LookupError:
        future.set_exception()
    assert calls == [future]
    with pytest.raises(LookupError, match="nope"):
        future.get()


def test_a_failing_callback_neither_stops_others_nor_the_setter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    future: CallbackFuture[int] = CallbackFuture()
    calls: list[str] = []

    def failing(_: CallbackFuture[int]) -> None:
        raise RuntimeError("callback bug")

    future.add_done_callback(failing)
    future.add_done_callback(lambda _: calls.append("second"))
    with caplog.at_level(logging.ERROR, logger="actors.runtime"):
        future.set(1)
    assert calls == ["second"]
    assert "callback bug" in caplog.text


def _add_callbacks_while_setting(adders: int, per_adder: int) -> list[int]:
    future: CallbackFuture[None] = CallbackFuture()
    calls: list[int] = []
    start = threading.Barrier(adders + 1)

    def add(adder: int) -> None:
        start.wait()
        for i in range(per_adder):
            future.add_done_callback(lambda _, key=(adder, i): calls.append(key))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(adders)]
    for thread in threads:
        thread.start()
    start.wait()
    future.set()
    for thread in threads:
        thread.join()
    return calls


@pytest.mark.parametrize("attempt", range(20))
def test_callbacks_added_while_another_thread_sets_run_exactly_once(attempt: int) -> None:
    calls = _add_callbacks_while_setting(adders=4, per_adder=200)
    assert sorted(calls) == [(a, i) for a in range(4) for i in range(200)]


def test_a_future_with_a_get_hook_takes_no_callbacks() -> None:
    future: CallbackFuture[int] = CallbackFuture()
    derived = future.map(lambda v: v + 1)
    assert isinstance(derived, CallbackFuture)
    assert derived.has_get_hook
    with pytest.raises(ValueError, match="get hook"):
        derived.add_done_callback(lambda _: None)


def test_both_actor_kinds_reply_with_callback_futures(harness: Harness) -> None:
    async def scenario() -> tuple[Any, Any]:
        loop_reply = Recorder.start().ask("x", block=False)
        threaded_reply = GatedCallbackActor.start(threading.Event()).ask("raise", block=False)
        await asyncio.gather(
            bridge.wait(loop_reply), bridge.wait(threaded_reply), return_exceptions=True
        )
        return loop_reply, threaded_reply

    loop_reply, threaded_reply = harness.run(scenario)
    assert isinstance(loop_reply, CallbackFuture)
    assert isinstance(threaded_reply, CallbackFuture)
