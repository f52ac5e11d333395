"""The Python client's live-result costs (issue 16's bench, Python side).

1. Applying a 1,000-row q-diff (400 added, 400 updated, half of them moving in the
   `$order`, 200 removed) to a 10,000-row live result, through `LiveQuery.handle`
   (index by id, cached sort keys, one nearly-sorted Timsort, the new result handed to
   listeners): median and p95 of 30 runs, wall and process CPU.
2. Reconnect-with-resume after a server restart: a live query holding 2,000 rows, the
   client held off (a TCP gate) while another client writes 1,000 changes, then let
   back: the frames it received (q-init / q-diff) and the rows in them.

    python -m bench.pyclient [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))

from actorbase_client import Client
from actorbase_client.live import LiveQuery
from actorbase_client.optimistic import Optimistic

from tests.clients.conftest import PASSWORD, Gate, new_email
from tests.serverproc import PostgresDatabase, ServerProcess


class _NoTransport:
    def add(self, live: LiveQuery) -> None:
        """The frames come from the bench itself."""

    def remove(self, live: LiveQuery) -> None:
        """Nothing to unsubscribe."""


def diff_apply(runs: int = 30) -> None:
    rng = random.Random(1)
    wall, cpu = [], []
    for _ in range(runs):
        rows = [
            {"id": f"r{i:05d}", "p": rng.randint(0, 1000), "title": "x" * 20} for i in range(10_000)
        ]
        rows.sort(key=lambda r: (-r["p"], r["id"]))
        live = LiveQuery({"t": {"$order": {"p": "desc"}}}, "q1", _NoTransport(), Optimistic())
        live.handle({"type": "q-init", "id": "q1", "data": {"t": rows}, "tx": 1})
        ids = [r["id"] for r in rows]
        removed = rng.sample(ids, 200)
        rest = list(set(ids) - set(removed))
        updated = [{"id": i, "p": rng.randint(0, 1000)} for i in rng.sample(rest, 200)]
        updated += [{"id": i, "title": "y"} for i in rng.sample(rest, 200)]
        added = [{"id": f"n{i:05d}", "p": rng.randint(0, 1000), "title": "z"} for i in range(400)]
        frame = {
            "type": "q-diff",
            "id": "q1",
            "added": added,
            "updated": updated,
            "removed": removed,
            "tx": 2,
        }
        t0, c0 = time.perf_counter(), time.process_time()
        live.handle(frame)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        assert len(live.result["t"]) == 10_200
    wall.sort()
    cpu.sort()
    p95 = wall[int(0.95 * len(wall)) - 1]
    print(
        f"diff apply 10,000 rows + 1,000-row diff: median {statistics.median(wall):.1f} ms, "
        f"p95 {p95:.1f} ms wall; CPU median {statistics.median(cpu):.1f} ms"
    )


async def resume(database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = PostgresDatabase(database_url) if database_url else None
        url = db.url if db else f"sqlite:///{tmp}/actorbase.db"
        server = ServerProcess(Path(tmp), url).start()
        gate = await Gate(server.port).start()
        email, u = new_email(), uuid.uuid4().hex[:6]
        query = {"notes": {"$order": {"n": "asc"}, "$limit": 1000}}
        try:
            async with Client(gate.url, reconnect_base=0.05, reconnect_max=0.5) as ab:
                await ab.auth.sign_up(email, PASSWORD)
                for start in range(0, 2000, 500):
                    await ab.mutate(
                        [
                            {"entity": "notes", "id": f"{u}{i}", "op": "set", "data": {"n": i}}
                            for i in range(start, start + 500)
                        ]
                    )
                live = ab.live(query)
                await live.ready()
                inits, diffs = live.stats.inits, live.stats.diffs
                gate.cut()
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(server.start)
                async with Client(server.url) as other:
                    await other.auth.sign_in(email, PASSWORD)
                    for start in range(0, 1000, 500):
                        await other.mutate(
                            [
                                {
                                    "entity": "notes",
                                    "id": f"{u}{i}",
                                    "op": "merge",
                                    "data": {"n": -i},
                                }
                                for i in range(start, start + 500)
                            ]
                        )
                    expected = (await other.query(query))["notes"]
                t0 = time.perf_counter()
                gate.open()
                async for result in live:
                    if result["notes"] == expected:
                        break
                took = (time.perf_counter() - t0) * 1000
                print(
                    f"resume after a restart and 1,000 writes ({url.split(':')[0]}): "
                    f"q-init {live.stats.inits - inits}, q-diff {live.stats.diffs - diffs}, "
                    f"result equal to the server's; {took:.0f} ms from the gate opening "
                    "(reconnect backoff included)"
                )
        finally:
            await gate.stop()
            server.stop()
            if db:
                db.drop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"load {os.getloadavg()[0]:.2f}, Python {platform.python_version()}"
    )
    diff_apply()
    asyncio.run(resume(None))
    if args.database_url:
        asyncio.run(resume(args.database_url))


if __name__ == "__main__":
    main()
