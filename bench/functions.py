"""Server function throughput and latency beside plain /api/mutate.

16 concurrent clients (wrk, a C load generator, so the client does not eat the
server's CPU) call a trivial read-write function, `bump` below: it reads one row of
1,000 (picked at random per request) and writes it back with a counter + 1, as one
serializable transaction; then the same clients send the equivalent /api/mutate
merge. Prints calls/s, p50 and p99 for each, and the retries the function needed
(read from the counters). This file is also the app the server loads (APP), so the
benchmark's function and its driver stay together. Not run in CI.

    python -m bench.functions [--database-url postgresql://…] [--seconds 10]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

from store.functions import Context

ROWS = 1000

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
request = function()
  local id = "r" .. math.random(%d)
  return wrk.format(nil, "%s", nil, %s)
end
"""
FN_BODY = "'{\"id\": \"' .. id .. '\"}'"
MUTATE_BODY = (
    '\'{"ops": [{"entity": "bench", "id": "\' .. id .. \'", "op": "merge", '
    '"data": {"touched": true}}]}\''
)


def bump(ctx: Context, id: str) -> int:
    """Read one row and write it back incremented."""
    row = ctx.admin.get("bench", id) or {}
    value = int(row.get("n", 0)) + 1
    ctx.admin.merge("bench", id, {"n": value})
    return value


functions = [bump]


def run(database_url: str | None, seconds: int, connections: int) -> None:
    from bench.rest import wrk
    from tests.serverproc import ADMIN_TOKEN, Api, PostgresDatabase, ServerProcess

    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-"))
    db = PostgresDatabase(database_url) if database_url else None
    url = db.url if db else f"sqlite:///{tmp / 'fn.db'}"
    rows: list[tuple[str, dict[str, float]]] = []
    server = ServerProcess(
        tmp / "data", url, APP=__file__, RATE_LIMIT="0", LOG_LEVEL="warning"
    ).start()
    try:
        api = Api(server.url, ADMIN_TOKEN)
        ids = [f"r{i}" for i in range(1, ROWS + 1)]  # wrk's math.random(ROWS) is 1-based
        ops = [{"entity": "bench", "id": id, "op": "set", "data": {"n": 0}} for id in ids]
        assert api.post("/api/mutate", json={"ops": ops}).status_code == 200
        for name, path, body in (
            ("fn bump (read + write)", "/api/fn/bump", FN_BODY),
            ("mutate merge", "/api/mutate", MUTATE_BODY),
        ):
            script = tmp / "load.lua"
            script.write_text(LUA % (ADMIN_TOKEN, ROWS, path, body))
            rows.append((name, wrk(server.url, script, seconds, connections)))
        counted = api.post("/api/query", json={"bench": {"$limit": ROWS}}).json()["bench"]
        calls = sum(int(r.get("n", 0)) for r in counted)
    finally:
        server.stop()
        if db:
            db.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    backend = "postgresql" if database_url else "sqlite"
    print(
        f"# bench/functions.py  {datetime.date.today()}  {platform.node()}  {os.cpu_count()} cores"
    )
    print(
        f"# backend={backend} clients={connections} seconds={seconds} (wrk -t1), FUNCTION_WORKERS=2"
    )
    print(f"{'workload':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in rows:
        print(f"{name:28} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:8d}")
    print(f"function calls committed: {calls}")


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="postgresql://… (default: SQLite)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("bench/functions.py needs wrk: apt-get install wrk")
    run(args.database_url, args.seconds, args.connections)


if __name__ == "__main__":
    main()
