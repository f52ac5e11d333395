"""REST creates and gets by id with CPU per request, actorbase or Parse Server.

The peers' workload (`../shared/peers/wrkrest.py`: a signed-up user's token, 200 rows,
wrk `-t1 -c32`, creates then gets by id), plus what a shared box moves least: the CPU
(user + system) the server process and its PostgreSQL backends spent per request. On a
box where other jobs take the cores, req/s follows the box; CPU per request follows
the code.

    python -m bench.rest_cpu [--database-url postgresql://…]     # actorbase, own server
    python -m bench.rest_cpu --admin                             # the admin token, for reference
    python -m bench.rest_cpu --system parse                      # /tmp/peers/parse running

actorbase starts from the current directory's code (SQLite unless --database-url);
Parse is the one `../shared/peers/setup.sh` installs (its database `parse`, pid in
/tmp/peers/parse/server.pid). One JSON line per run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import requests

from bench.realtime import _cpu_seconds
from bench.rest import wrk
from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, PostgresDatabase, ServerProcess

PARSE = "http://127.0.0.1:1337"
PARSE_DB = "postgresql://postgres:postgres@127.0.0.1:5432/parse"
DOC = {"title": "Buy groceries", "done": False, "priority": 3}


def _db_cpu(url: str | None) -> float:
    """CPU seconds so far of every backend connected to `url`'s database."""
    if url is None:
        return 0.0
    with psycopg.connect(url, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # gone meanwhile
            total += _cpu_seconds(pid)
    return total


def _scripts(headers: dict[str, str], collection: str, ids: list[str]) -> tuple[str, str]:
    lua = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    lua += 'wrk.headers["Content-Type"] = "application/json"\n'
    create = lua + f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(DOC))}\n'
    get = (
        lua
        + "local ids = {"
        + ",".join(f'"{i}"' for i in ids)
        + "}\n"
        + "request = function()\n"
        + f'  return wrk.format("GET", "{collection}/" .. ids[math.random(#ids)])\n'
        + "end\n"
    )
    return create, get


def measure(
    args: argparse.Namespace,
    base: str,
    pid: int,
    db_url: str | None,
    headers: dict[str, str],
    collection: str,
    ids: list[str],
) -> dict[str, Any]:
    create, get = _scripts(headers, collection, ids)
    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-cpu-"))
    out: dict[str, Any] = {}
    for name, lua, url in (("creates", create, base + collection), ("gets", get, base)):
        script = tmp / f"{name}.lua"
        script.write_text(lua)
        db0 = _db_cpu(db_url)
        result = wrk(url, script, args.seconds, args.connections, pid)
        served = max(1.0, result["rps"] * args.seconds)
        out[name] = {
            "req_per_s": round(result["rps"]),
            "server_cpu_ms": round(result["cpu"], 3),
            "db_cpu_ms": round((_db_cpu(db_url) - db0) / served * 1000, 3),
            "p99_ms": result["p99"],
            "non2xx": result["errors"],
        }
    out["load"] = round(os.getloadavg()[0], 2)
    return out


def parse(args: argparse.Namespace) -> dict[str, Any]:
    pid = int(Path("/tmp/peers/parse/server.pid").read_text())
    app = {"X-Parse-Application-Id": "bench"}
    user = requests.post(
        PARSE + "/parse/users",
        json={"username": f"wrk-{os.urandom(5).hex()}", "password": "SecurePass123!x"},
        headers={**app, "X-Parse-Revocable-Session": "1"},
        timeout=30,
    ).json()
    headers = {**app, "X-Parse-Session-Token": user["sessionToken"]}
    collection = "/parse/classes/Todo"
    ids = [
        requests.post(PARSE + collection, json=DOC, headers=headers, timeout=30).json()["objectId"]
        for _ in range(200)
    ]
    return {"system": "parse", **measure(args, PARSE, pid, PARSE_DB, headers, collection, ids)}


def actorbase(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-cpu-"))
    db = PostgresDatabase(args.database_url) if args.database_url else None
    url = db.url if db else f"sqlite:///{tmp / 'actorbase.db'}"
    server = ServerProcess(tmp, url, RATE_LIMIT="0", LOG_LEVEL="warning").start()
    try:
        # The user's token is the workload; --admin is the reference row (issue 13: the
        # user's throughput within 15% of the admin's).
        token = ADMIN_TOKEN if args.admin else signup(Api(server.url)).access
        api = Api(server.url, token)
        collection = "/api/data/todos"
        ids = [api.post(collection, json=DOC).json()["data"]["id"] for _ in range(200)]
        headers = {"Authorization": f"Bearer {token}"}
        pid = server.proc.pid  # type: ignore[union-attr]
        figures = measure(args, server.url, pid, db.url if db else None, headers, collection, ids)
        backend = "postgresql" if db else "sqlite"
        token_kind = "admin" if args.admin else "user"
        return {
            "system": "actorbase",
            "backend": backend,
            "token": token_kind,
            "cwd": os.getcwd(),
            **figures,
        }
    finally:
        server.stop()
        if db is not None:
            db.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["actorbase", "parse"], default="actorbase")
    parser.add_argument("--database-url", help="actorbase on PostgreSQL (default: SQLite)")
    parser.add_argument("--admin", action="store_true", help="actorbase with the admin token")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(parse(args) if args.system == "parse" else actorbase(args)), flush=True)


if __name__ == "__main__":
    main()
