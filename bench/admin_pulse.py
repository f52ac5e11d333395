"""What the admin dashboard costs the server: the per-request counting that feeds
/api/admin/pulse, and the server CPU per poll of the Live system page.

    python -m bench.admin_pulse [--calls 500]

1. `Meter.record` (every HTTP request now records its latency for the pulse): ns per
   call, in this process.
2. A SQLite server from the current directory's code: server CPU (user + system, from
   /proc) per GET of /api/admin/health (the baseline: the cheapest request), of
   /api/admin/pulse, and of one Live-page refresh (pulse + stats + rooms, every 2 s).
   Serial requests from one client; CPU per call is what a busy box moves least.
One JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import timeit
from pathlib import Path

import requests

from bench.realtime import _cpu_seconds
from store.stats import Meter
from tests.serverproc import ADMIN_TOKEN, ServerProcess


def record_ns(calls: int = 200_000) -> float:
    meter = Meter()
    return timeit.timeit(lambda: meter.record(0.0012), number=calls) / calls * 1e9


def cpu_per_call(server: ServerProcess, paths: list[str], calls: int) -> float:
    """Server CPU µs per round of GETs of `paths` (after a warm-up)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    for path in paths * 20:
        session.get(server.url + path, timeout=10).raise_for_status()
    assert server.proc is not None
    before = _cpu_seconds(server.proc.pid)
    for _ in range(calls):
        for path in paths:
            session.get(server.url + path, timeout=10).raise_for_status()
    return (_cpu_seconds(server.proc.pid) - before) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    figures = {"meter_record_ns": round(record_ns(), 1)}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        server = ServerProcess(data, f"sqlite:///{data / 'actorbase.db'}").start()
        try:
            for name, paths in (
                ("health_cpu_us", ["/api/admin/health"]),
                ("pulse_cpu_us", ["/api/admin/pulse"]),
                (
                    "live_page_refresh_cpu_us",
                    ["/api/admin/pulse", "/api/admin/stats", "/api/admin/rooms"],
                ),
            ):
                figures[name] = round(cpu_per_call(server, paths, args.calls), 1)
        finally:
            server.stop()
    figures["loadavg"] = os.getloadavg()[0]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
