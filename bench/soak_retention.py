"""Soak: an hour-equivalent of writes with a small TX_RETENTION keeps the database flat.

Starts its own server (SQLite by default; --database-url for PostgreSQL) with
TX_RETENTION set to a count of commits and SWEEP_INTERVAL=1, and drives it with wrk
(Debian package `wrk`): each request is one `set` of a ~300-byte row among --rows
rows, so the rows themselves stop growing once all exist and whatever still grows is
the tx log (each commit logs the row's before and after images). An hour at --rate
commits/s (default 20/s: 72,000 commits) is written in rounds of --round seconds;
after each round it prints the database size and the rows in ab_tx. With
--compare it runs again with pruning effectively off (TX_RETENTION=36500d), the
growth retention prevents. Not run in CI; figures in docs/benchmarks.md.

    python -m bench.soak_retention [--database-url postgresql://…] [--compare]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.serverproc import ADMIN_TOKEN, PostgresDatabase, ServerProcess

SET_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
local pad = string.rep("x", 240)
request = function()
  local body = '{"ops": [{"entity": "soak", "op": "set", "id": "r' .. math.random(%d) ..
    '", "data": {"n": ' .. math.random(1000000) .. ', "pad": "' .. pad .. '"}}]}'
  return wrk.format(nil, "/api/mutate", nil, body)
end
"""


def _size(server: ServerProcess) -> int:
    """Bytes the database takes: the SQLite file and its WAL, or pg_database_size."""
    if server.database_url.startswith("sqlite:///"):
        path = Path(server.database_url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return int(server.sql("SELECT pg_database_size(current_database())")[0][0])


def _figures(server: ServerProcess) -> tuple[int, int, int, int]:
    """(last tx, rows in ab_tx, floor, database bytes)."""
    last = int(server.sql("SELECT value FROM ab_counters WHERE name = 'tx'")[0][0])
    logged = int(server.sql("SELECT count(*) FROM ab_tx")[0][0])
    floor = int(server.sql("SELECT value FROM ab_counters WHERE name = 'tx_floor'")[0][0])
    return last, logged, floor, _size(server)


def soak(
    database_url: str | None,
    retention: str,
    commits: int,
    rows: int,
    round_seconds: int,
    connections: int,
) -> list[tuple[int, int, int, int]]:
    tmp = Path(tempfile.mkdtemp(prefix="ab-soak-"))
    db = PostgresDatabase(database_url) if database_url else None
    url = db.url if db else f"sqlite:///{tmp / 'soak.db'}"
    server = ServerProcess(
        tmp / "data", url, RATE_LIMIT="0", TX_RETENTION=retention, SWEEP_INTERVAL="1"
    ).start()
    samples = [_figures(server)]
    try:
        script = tmp / "set.lua"
        script.write_text(SET_LUA % (ADMIN_TOKEN, rows))
        command = ["wrk", "-t1", f"-c{connections}", f"-d{round_seconds}s", "-s", str(script)]
        while samples[-1][0] < commits:
            out = subprocess.run(
                [*command, server.url],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
                raise SystemExit(f"writes failed:\n{out}\n{server.log()[-2000:]}")
            time.sleep(1.5)  # one more sweep after the round
            samples.append(_figures(server))
            last, logged, floor, size = samples[-1]
            print(
                f"  {retention:>10}  commits {last:7d}  ab_tx rows {logged:7d}  "
                f"floor {floor:7d}  db {size / 1e6:7.1f} MB",
                flush=True,
            )
    finally:
        server.stop()
        if db:
            db.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="postgresql://… (default: SQLite)")
    parser.add_argument("--retention", default="2000", help="TX_RETENTION (default 2000)")
    parser.add_argument("--rate", type=int, default=20, help="commits/s the hour stands for")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--round", type=int, default=10, help="seconds of wrk per round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--compare", action="store_true", help="also run without pruning")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench/soak_retention.py needs wrk: apt-get install wrk")
    commits = args.rate * 3600
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"# bench/soak_retention.py  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"# {platform.node()}  {os.cpu_count()} cores  backend={backend}")
    print(f"# {commits} commits (an hour at {args.rate}/s) over {args.rows} rows")
    runs = [args.retention] + (["36500d"] if args.compare else [])
    results = {}
    for retention in runs:
        results[retention] = soak(
            args.database_url, retention, commits, args.rows, args.round, args.connections
        )
    print(
        f"{'TX_RETENTION':>12} {'commits':>8} {'ab_tx rows':>10} {'db at start':>12} "
        f"{'db 1st round':>13} {'db at the end':>14}"
    )
    for retention, samples in results.items():
        start, first, end = samples[0], samples[1], samples[-1]
        print(
            f"{retention:>12} {end[0]:8d} {end[1]:10d} {start[3] / 1e6:9.1f} MB "
            f"{first[3] / 1e6:10.1f} MB {end[3] / 1e6:11.1f} MB"
        )


if __name__ == "__main__":
    main()
