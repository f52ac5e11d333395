"""LoopActor against pykka.ThreadingActor: start cost, memory and fan-out, per actor.

    python -m bench.actors [--loop-actors 10000] [--thread-actors 2000] [--rounds 5]

Not run in CI. Each runtime is measured in a fresh subprocess, so RSS growth is its own.
Both processes run a Tornado IOLoop in a background thread, as the server does; the
actors are started and told from the main thread, and once more, for LoopActor, from a
callback on the loop (a room telling its members). A fan-out is timed from the first
tell to the last actor having handled its message; the best of `--rounds` is shown.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import subprocess
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Latch:
    """Counts down from `n` on any thread; `done` is set at zero."""

    def __init__(self, n: int) -> None:
        self._left = n
        self._lock = threading.Lock()
        self.done = threading.Event()

    def hit(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self.done.set()


def _rss_kib() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1024


def _worker(kind: str, n: int, rounds: int) -> dict[str, float]:
    # Imported here, not at the top: run as a file, this script would shadow `actors`.
    import pykka
    from tornado.ioloop import IOLoop

    from actors.runtime import LoopActor, bind_loop

    ready = threading.Event()
    io_loops: list[IOLoop] = []

    def serve() -> None:
        io_loops.append(IOLoop())
        io_loops[0].add_callback(ready.set)
        io_loops[0].start()

    threading.Thread(target=serve, daemon=True).start()
    ready.wait()
    io_loop = io_loops[0]
    bind_loop(io_loop.asyncio_loop)  # type: ignore[attr-defined]
    base: type[pykka.Actor] = LoopActor if kind == "loop" else pykka.ThreadingActor

    class Sink(base):  # type: ignore[valid-type,misc]
        def __init__(self, started: Latch) -> None:
            super().__init__()
            self.started = started

        def on_start(self) -> None:
            self.started.hit()

        def on_receive(self, message: Latch) -> None:
            message.hit()

    gc.collect()
    rss_before = _rss_kib()
    started = Latch(n)
    t0 = time.perf_counter()
    refs = [Sink.start(started) for _ in range(n)]
    started.done.wait()
    start_s = time.perf_counter() - t0
    gc.collect()
    rss_per_actor = (_rss_kib() - rss_before) / n

    def fan_out_from_here() -> float:
        latch = Latch(n)
        t0 = time.perf_counter()
        for ref in refs:
            ref.tell(latch)
        latch.done.wait()
        return time.perf_counter() - t0

    def fan_out_from_loop() -> float:
        latch = Latch(n)
        begun: list[float] = []

        def tell_all() -> None:
            begun.append(time.perf_counter())
            for ref in refs:
                ref.tell(latch)

        io_loop.add_callback(tell_all)
        latch.done.wait()
        return time.perf_counter() - begun[0]

    result = {
        "n": n,
        "start_us": start_s / n * 1e6,
        "rss_kib": rss_per_actor,
        "fanout_s": min(fan_out_from_here() for _ in range(rounds)),
    }
    if kind == "loop":
        result["fanout_loop_s"] = min(fan_out_from_loop() for _ in range(rounds))
    for stopping in [ref.stop(block=False) for ref in refs]:
        stopping.get()
    return result


def _measure(kind: str, n: int, rounds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.actors",
            "--worker",
            kind,
            "-n",
            str(n),
            "--rounds",
            str(rounds),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def _row(label: str, loop: float, threads: float | None, ratio: bool = False) -> str:
    row = f"{label:38}{loop:>11.2f}"
    if threads is None:
        return row + f"{'-':>16}"
    row += f"{threads:>16.2f}"
    return row + f"{threads / loop:>6.0f}x" if ratio else row


def _table(loop: dict[str, float], threads: dict[str, float]) -> str:
    """Per-actor rows get a ratio (ThreadingActor / LoopActor); totals do not, N differs."""
    loop_fanout_us = loop["fanout_s"] / loop["n"] * 1e6
    thread_fanout_us = threads["fanout_s"] / threads["n"] * 1e6
    return "\n".join(
        [
            f"{'':38}{'LoopActor':>11}{'ThreadingActor':>16}{'ratio':>7}",
            f"{'actors':38}{loop['n']:>11,.0f}{threads['n']:>16,.0f}",
            _row("start, µs per actor", loop["start_us"], threads["start_us"], ratio=True),
            _row("RSS, KiB per actor", loop["rss_kib"], threads["rss_kib"], ratio=True),
            _row("fan-out, µs per actor", loop_fanout_us, thread_fanout_us, ratio=True),
            _row("fan-out, ms total", loop["fanout_s"] * 1e3, threads["fanout_s"] * 1e3),
            _row(
                "fan-out told on the loop, µs per actor",
                loop["fanout_loop_s"] / loop["n"] * 1e6,
                None,
            ),
            _row("fan-out told on the loop, ms total", loop["fanout_loop_s"] * 1e3, None),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop-actors", type=int, default=10_000)
    parser.add_argument("--thread-actors", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", choices=["loop", "thread"], help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.n, args.rounds)))
        return
    loop = _measure("loop", args.loop_actors, args.rounds)
    threads = _measure("thread", args.thread_actors, args.rounds)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"{now}, nproc {os.cpu_count()}, Python {sys.version.split()[0]}, "
        f"pykka {version('pykka')}, tornado {version('tornado')}"
    )
    print(_table(loop, threads))


if __name__ == "__main__":
    main()
