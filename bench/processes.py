"""One server process against WEB_CONCURRENCY=2 on PostgreSQL: REST creates and gets
by id with a user token (wrk, as bench/rest.py), then live-query fan-out to 1,000
subscribers (bench/realtime.py's bare clients) on one process and spread over two.

Each REST pair (1 process, then 2) runs back to back on fresh databases, and every
line carries the 1-minute load average taken just before it: the box may be shared.
`cpu ms/req` is the CPU of the whole server (supervisor and children) per request;
`pg ms` and `wrk ms` are PostgreSQL's (every backend) and wrk's, and `box %` how busy
all cores were: near 100%, a second process has no core left to use. Prints the ratio
of 2 processes to 1 for each pair, and after each pair the creates of two processes
sharing nothing (`ceiling`): the most two processes get from this box. Not run in CI.

    python -m bench.processes --database-url postgresql://… [--seconds 8] [--pairs 2]
                              [--subscribers 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import requests

from bench.realtime import (
    _all,
    _cpu_seconds,
    _pct,
    _raise_fd_limit,
    _signup,
    _split,
    _worker,
    _write_loop,
)
from bench.rest import CREATE_LUA, GET_LUA, wrk
from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, PostgresDatabase, ServerProcess


def _tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *map(int, children.read_text().split())] if children.exists() else [pid]


def _tree_cpu(pid: int) -> float:
    return sum(_cpu_seconds(p) for p in _tree(pid))


class _Box:
    """The whole machine's CPU over one wrk run: every core, PostgreSQL's backends and
    wrk (this process's waited-for children), to tell a CPU-bound run from one that
    waits (on a lock, say) with cores idle."""

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float, float]:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        ticks = [int(n) for n in first[1:9]]  # user nice system idle iowait irq softirq steal
        postgres = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:  # gone meanwhile
                continue
            if text[text.index("(") + 1 : text.rindex(")")] == "postgres":
                fields = text.rpartition(")")[2].split()
                postgres += int(fields[11]) + int(fields[12])
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        tick = os.sysconf("SC_CLK_TCK")
        return (
            sum(ticks) / tick,
            (ticks[3] + ticks[4]) / tick,
            postgres / tick,
            children.ru_utime + children.ru_stime,
        )

    def figures(self, result: dict[str, float], seconds: int) -> None:
        """Add `pg`, `wrk` (CPU ms per request) and `box` (% of all cores busy)."""
        total, idle, postgres, wrk = (b - a for a, b in zip(self.start, self._now(), strict=True))
        done = result["rps"] * seconds
        result["pg"] = postgres / done * 1000
        result["wrk"] = wrk / done * 1000
        result["box"] = (total - idle) / total * 100


def _server(tmp: Path, db: PostgresDatabase, processes: int, **env: str) -> ServerProcess:
    server = ServerProcess(
        tmp / f"p{processes}-{time.monotonic_ns()}",
        db.url,
        WEB_CONCURRENCY=str(processes),
        RATE_LIMIT="0",
        LOG_LEVEL="warning",
        **env,
    ).start(timeout=180)  # a busy shared box may take long to start two
    # Every child answering: health from fresh connections until as many nodes are seen.
    seen: set[str] = set()
    for _ in range(500):
        seen.add(requests.get(server.url + "/api/admin/health", timeout=10).json()["node"])
        if len(seen) == processes:
            break
    return server


def rest_pair(base_url: str, seconds: int, connections: int) -> dict[int, dict[str, float]]:
    """Creates and gets/s with 1 then 2 processes, each on a fresh database."""
    out: dict[int, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-procs-"))
    try:
        for processes in (1, 2):
            db = PostgresDatabase(base_url)
            try:
                server = _server(tmp, db, processes)
                try:
                    pid = server.proc.pid  # type: ignore[union-attr]
                    user = signup(Api(server.url)).access
                    script = tmp / "create.lua"
                    script.write_text(CREATE_LUA % user)
                    load = os.getloadavg()[0]
                    cpu0, box = _tree_cpu(pid), _Box()
                    creates = wrk(server.url + "/api/data/todos", script, seconds, connections, pid)
                    creates["cpu"] = (_tree_cpu(pid) - cpu0) / (creates["rps"] * seconds) * 1000
                    box.figures(creates, seconds)
                    mine = Api(server.url, user).get("/api/data/todos", params={"limit": 1000})
                    ids = ",".join(f'"{r["id"]}"' for r in mine.json()["data"])
                    script = tmp / "get.lua"
                    script.write_text(GET_LUA % (user, ids))
                    cpu0, box = _tree_cpu(pid), _Box()
                    gets = wrk(server.url, script, seconds, connections, pid)
                    gets["cpu"] = (_tree_cpu(pid) - cpu0) / (gets["rps"] * seconds) * 1000
                    box.figures(gets, seconds)
                    out[processes] = {"load": load, "creates": creates, "gets": gets}
                finally:
                    server.stop()
            finally:
                db.drop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def ceiling(base_url: str, seconds: int, connections: int) -> dict[str, float]:
    """Creates/s of two one-process servers on two databases, each driven by its own
    wrk with half the connections: two processes with nothing shared (no tx counter,
    no NOTIFY), so what they reach is what this box's cores allow."""
    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-procs-"))
    dbs = [PostgresDatabase(base_url), PostgresDatabase(base_url)]
    servers: list[ServerProcess] = []
    try:
        scripts = []
        for n, db in enumerate(dbs):
            servers.append(_server(tmp, db, 1))
            scripts.append(tmp / f"create{n}.lua")
            scripts[-1].write_text(CREATE_LUA % signup(Api(servers[-1].url)).access)
        box = _Box()
        runs = [
            subprocess.Popen(
                [
                    "wrk",
                    "-t1",
                    f"-c{connections // 2}",
                    f"-d{seconds}s",
                    "-s",
                    str(script),
                    server.url + "/api/data/todos",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for server, script in zip(servers, scripts, strict=True)
        ]
        outs = [run.communicate()[0] for run in runs]
        rps = sum(float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1)) for o in outs)
        result = {"rps": rps}
        box.figures(result, seconds)
        return result
    finally:
        for server in servers:
            server.stop()
        for db in dbs:
            db.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def fanout(base_url: str, processes: int, subscribers: int, workers: int, seconds: float) -> str:
    """Mutation-to-diff p50/p99 at 5 writes/s to `subscribers` sockets on one query."""
    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-procs-"))
    db = PostgresDatabase(base_url)
    pipes: list[Connection] = []
    procs: list[mp.Process] = []
    server = _server(
        tmp,
        db,
        processes,
        ACCESS_TOKEN_TTL="3600",
        NODE_HEARTBEAT="0.2",  # fresh per-node figures in /api/admin/stats
        WS_MAX_CONNECTIONS_PER_USER=str(subscribers),
        MAX_SUBSCRIPTIONS_PER_USER=str(2 * subscribers),
    )
    try:
        tokens = _signup(server.url, 1)
        ws_url = server.url.replace("http", "ws", 1) + "/ws"
        counts = _split(subscribers, workers)
        for w in range(workers):
            ours, theirs = mp.Pipe()
            proc = mp.Process(
                target=_worker, args=(theirs, ws_url, tokens, sum(counts[:w]), None), daemon=True
            )
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        opened = sum(_all(pipes, "connect", counts))
        stride = max(1, subscribers // 200)
        _all(pipes, "subscribe", [(n, stride) for n in counts])
        time.sleep(1)
        nodes = requests.get(
            server.url + "/api/admin/stats",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        ).json()["nodes"]
        spread = "/".join(str(n.get("subscriptions", {}).get("active", "?")) for n in nodes)
        load = os.getloadavg()[0]
        pid = server.proc.pid  # type: ignore[union-attr]
        cpu0 = _tree_cpu(pid)
        trips = _write_loop(server.url, tokens[0], seconds, 5.0)
        time.sleep(2)
        cpu = (_tree_cpu(pid) - cpu0) / (seconds + 2) * 100
        parts = _all(pipes, "latencies", [None] * len(pipes))
        lat = [x for part, _ in parts for x in part]
        got = sum(n for _, n in parts)
        _all(pipes, "stop", [None] * len(pipes))
        return (
            f"fan-out, {processes} process(es), {opened} subscribers (live queries per node, "
            f"2 per socket: "
            f"{spread}): p50 {_pct(lat, 50):.1f} ms, p99 {_pct(lat, 99):.1f} ms; "
            f"{got} diffs of {len(trips) * opened}; server cpu {cpu:.0f}% of one core; "
            f"load {load:.2f}"
        )
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        server.stop()
        db.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def _figures(r: dict[str, float]) -> str:
    return f"{r['p99']:7.1f} {r['cpu']:6.2f} {r['pg']:5.2f} {r['wrk']:6.2f} {r['box']:5.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="postgresql://…")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench/processes.py needs wrk: apt-get install wrk")
    _raise_fd_limit()
    print(
        f"# bench/processes.py  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  "
        f"{platform.node()}  {os.cpu_count()} cores; postgresql; wrk -t1 "
        f"-c{args.connections} {args.seconds}s; user token"
    )
    figures = f"{'p99 ms':>7} {'cpu ms':>6} {'pg ms':>5} {'wrk ms':>6} {'box %':>5}"
    head = f"{'pair':>4} {'procs':>5} {'load':>5}"
    print(f"{head} {'creates/s':>9} {figures} {'gets/s':>7} {figures}")
    ratios: dict[str, list[float]] = {"creates": [], "gets": []}
    for pair in range(1, args.pairs + 1):
        result = rest_pair(args.database_url, args.seconds, args.connections)
        for processes, r in result.items():
            c, g = r["creates"], r["gets"]
            print(
                f"{pair:>4} {processes:>5} {r['load']:5.2f} {c['rps']:9.0f} {_figures(c)}"
                f" {g['rps']:7.0f} {_figures(g)}"
            )
        for verb in ratios:
            ratios[verb].append(result[2][verb]["rps"] / result[1][verb]["rps"])
        top = ceiling(args.database_url, args.seconds, args.connections)
        print(
            f"{pair:>4} 2 on 2 databases, nothing shared: creates {top['rps']:.0f}/s "
            f"({top['rps'] / result[1]['creates']['rps']:.2f}x one process), pg ms "
            f"{top['pg']:.2f}, box {top['box']:.0f}%"
        )
    for verb, values in ratios.items():
        print(
            f"{verb}: 2 processes / 1 = {', '.join(f'{v:.2f}x' for v in values)} "
            f"(median {statistics.median(values):.2f}x)"
        )
    for processes in (1, 2):
        print(fanout(args.database_url, processes, args.subscribers, args.workers, args.seconds))


if __name__ == "__main__":
    main()
