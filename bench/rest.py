"""REST throughput and latency: creates and gets-by-id with 32 concurrent clients.

Starts its own server (SQLite by default; --database-url for PostgreSQL) and drives
it with wrk (Debian package `wrk`), a C load generator, so the client does not eat
the server's CPU. Every request carries a signed-in user's access token, as real
clients do (token and session checks included); the admin token's rows are kept for
reference. Runs creates with group commit on and off, then gets. Prints req/s, p50
and p99 for each. Not run in CI. The side by side with Parse Server: docs/benchmarks.md.

    python -m bench.rest [--database-url postgresql://…] [--seconds 10]
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
from pathlib import Path

from bench.realtime import _cpu_seconds
from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, PostgresDatabase, ServerProcess

CREATE_LUA = """
wrk.method = "POST"
wrk.body = '{"title": "Buy groceries", "done": false, "priority": 3}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""

GET_LUA = """
wrk.headers["Authorization"] = "Bearer %s"
local ids = {%s}
request = function()
  return wrk.format("GET", "/api/data/todos/" .. ids[math.random(#ids)])
end
"""


def wrk(url: str, script: Path, seconds: int, connections: int, pid: int) -> dict[str, float]:
    """One wrk run; `cpu` is the server process's CPU (user + system) per request in
    ms, the figure a shared box moves least."""
    cpu0 = _cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    cpu = _cpu_seconds(pid) - cpu0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "cpu": cpu / max(1, requests) * 1000,
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def run(database_url: str | None, seconds: int, connections: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-"))
    db = PostgresDatabase(database_url) if database_url else None
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        for group_commit in ("true", "false"):
            url = db.url if db else f"sqlite:///{tmp / f'gc-{group_commit}.db'}"
            if db and group_commit == "false":
                db.drop()
                db = PostgresDatabase(database_url)
                url = db.url
            server = ServerProcess(
                tmp / f"gc-{group_commit}",
                url,
                RATE_LIMIT="0",
                LOG_LEVEL="warning",
                GROUP_COMMIT=group_commit,
            ).start()
            try:
                pid = server.proc.pid  # type: ignore[union-attr]
                user = signup(Api(server.url)).access
                on = "on" if group_commit == "true" else "off"
                tokens = (
                    [("user", user), ("admin", ADMIN_TOKEN)] if on == "on" else [("user", user)]
                )
                for who, token in tokens:
                    script = tmp / "create.lua"
                    script.write_text(CREATE_LUA % token)
                    result = wrk(server.url + "/api/data/todos", script, seconds, connections, pid)
                    rows.append((f"create, {who} token (group commit {on})", result))
                if on == "on":
                    mine = Api(server.url, user).get("/api/data/todos", params={"limit": 1000})
                    ids = ",".join(f'"{r["id"]}"' for r in mine.json()["data"])
                    for who, token in tokens:
                        script = tmp / "get.lua"
                        script.write_text(GET_LUA % (token, ids))
                        result = wrk(server.url, script, seconds, connections, pid)
                        rows.append((f"get by id, {who} token", result))
            finally:
                server.stop()
    finally:
        if db:
            db.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    backend = "postgresql" if database_url else "sqlite"
    print(f"# bench/rest.py  {datetime.date.today()}  {platform.node()}  {os.cpu_count()} cores")
    print(f"# backend={backend} clients={connections} seconds={seconds} (wrk -t1)")
    print(
        f"{'workload':42} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
        f" {'cpu ms/req':>10}"
    )
    for name, r in rows:
        print(
            f"{name:42} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:8d}"
            f" {r['cpu']:10.3f}"
        )
    rps = {name: r["rps"] for name, r in rows}
    on, off = (
        rps["create, user token (group commit on)"],
        rps["create, user token (group commit off)"],
    )
    print(f"group commit speed-up on user creates: {on / off:.1f}x")
    for verb in ("create", "get by id"):
        suffix = " (group commit on)" if verb == "create" else ""
        user, admin = rps[f"{verb}, user token{suffix}"], rps[f"{verb}, admin token{suffix}"]
        print(f"{verb}: user token at {user / admin:.0%} of the admin token's throughput")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="postgresql://… (default: SQLite)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench/rest.py needs wrk: apt-get install wrk")
    run(args.database_url, args.seconds, args.connections)


if __name__ == "__main__":
    main()
