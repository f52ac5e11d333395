"""What idempotency keys cost on /api/mutate: one-op mutations without a key, with a
fresh key each, and retries of keys already committed (answered from ab_idempotency).

Starts its own server (SQLite by default; --database-url for PostgreSQL) and drives
it with wrk (Debian package `wrk`) as one signed-in user, 32 connections, group
commit on. Prints req/s, p50 and p99 per workload, two rounds. Not run in CI.

    python -m bench.idempotency [--database-url postgresql://…] [--seconds 10]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import tempfile
import uuid
from pathlib import Path

from bench.rest import wrk
from tests.handlers.accounts import signup
from tests.serverproc import Api, PostgresDatabase, ServerProcess

RETRIED = 200
"""Keys committed before the retry workload, which then cycles through them."""

MUTATE_LUA = """
wrk.method = "POST"
local n = 0
request = function()
  n = n + 1
  local id = "%(tag)s-" .. (%(cycle)s)
  -- wrk.format takes these instead of wrk.headers, not on top of them
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(token)s"}
  if %(keyed)s then headers["Idempotency-Key"] = id end
  local body = '{"ops": [{"entity": "bench", "id": "' .. id .. '", "op": "set", ' ..
    '"data": {"title": "Buy groceries", "done": false}}]}'
  return wrk.format(nil, "/api/mutate", headers, body)
end
"""


def script(tmp: Path, token: str, tag: str, keyed: bool, cycle: int | None) -> Path:
    path = tmp / f"{tag}.lua"
    path.write_text(
        MUTATE_LUA
        % {
            "token": token,
            "tag": tag,
            "keyed": "true" if keyed else "false",
            "cycle": "n" if cycle is None else f"n % {cycle}",
        }
    )
    return path


def run(database_url: str | None, seconds: int, connections: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-"))
    db = PostgresDatabase(database_url) if database_url else None
    url = db.url if db else f"sqlite:///{tmp / 'actorbase.db'}"
    server = ServerProcess(tmp / "data", url, RATE_LIMIT="0", LOG_LEVEL="warning").start()
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        user = signup(Api(server.url))
        run_tag = uuid.uuid4().hex[:8]
        for i in range(RETRIED):  # the keys the retry workload replays
            ops = [
                {
                    "entity": "bench",
                    "id": f"r{run_tag}-{i}",
                    "op": "set",
                    "data": {"title": "Buy groceries", "done": False},
                }
            ]
            headers = {"Idempotency-Key": f"r{run_tag}-{i}"}
            r = user.api.post("/api/mutate", json={"ops": ops}, headers=headers)
            assert r.status_code == 200, r.text
        workloads = [
            ("mutate, no key", f"p{run_tag}", False, None),
            ("mutate, a fresh key each", f"k{run_tag}", True, None),
            ("retry of a committed key", f"r{run_tag}", True, RETRIED),
        ]
        # Each workload twice, interleaved, so a drift of the machine (or of the
        # tables' size) shows as a difference between rounds, not between workloads.
        for round_ in (1, 2):
            for name, tag, keyed, cycle in workloads:
                lua = script(
                    tmp, user.access, f"{tag}{round_}" if cycle is None else tag, keyed, cycle
                )
                result = wrk(server.url, lua, seconds, connections)
                assert result["errors"] == 0, f"{name}: {result['errors']} requests failed"
                rows.append((f"{name} ({round_})", result))
    finally:
        server.stop()
        if db:
            db.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    backend = "postgresql" if database_url else "sqlite"
    print(
        f"# bench/idempotency.py  {datetime.date.today()}  {platform.node()}  "
        f"{os.cpu_count()} cores"
    )
    print(f"# backend={backend} clients={connections} seconds={seconds} (wrk -t1)")
    print(f"{'workload':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in rows:
        print(f"{name:34} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:8d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="postgresql://… (default: SQLite)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench/idempotency.py needs wrk: apt-get install wrk")
    run(args.database_url, args.seconds, args.connections)


if __name__ == "__main__":
    main()
