"""Where the CPU of a get by id goes, one server process against WEB_CONCURRENCY=2.

Gets by id with a user token (wrk `-t1 -c32`, bench/rest.py's script) against one
process, then two, on fresh PostgreSQL databases; for each run, CPU per get (ms) of
every thread of every server process (by thread name: the IOLoop is `MainThread`,
`read_N` the read pool, ...), the supervisor, the database's backends (and the
PostgreSQL server's own processes), and wrk; context switches per get; and how
wrk's connections spread over the processes; database transactions a get (a batch of
gets by id is one: store.rowbatch) and the server's syscalls a get (perf, if present).
CPU per get moves little when the box is shared; req/s follows the box. The
achievable ratio of 2 processes to 1 is about 2·S/(S+P+W), with S, P and W the
server's, PostgreSQL's and wrk's CPU per get. Needs wrk and py-spy (thread names).

    python -m bench.gets_cpu --database-url postgresql://… [--seconds 8] [--pairs 1]
        [--processes 1,2] [--connections 32] [--pin] [--env READ_THREADS=2 ...]

`--pin` puts each server process on a core of its own (taskset) before the run.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import re
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from bench.processes import _server, _tree
from bench.rest import GET_LUA
from tests.handlers.accounts import signup
from tests.serverproc import Api, PostgresDatabase

TICK = os.sysconf("SC_CLK_TCK")


def _stat(path: Path) -> tuple[float, int, int, float]:
    """(CPU seconds, voluntary, involuntary context switches, system CPU seconds) of a
    task or process."""
    fields = (path / "stat").read_text().rpartition(")")[2].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    status = (path / "status").read_text()
    vol = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
    nonvol = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
    return cpu, vol, nonvol, int(fields[12]) / TICK


def _names(pid: int) -> dict[int, str]:
    """Python's thread names by native thread id (py-spy reads them; Python 3.11 does
    not give them to the OS)."""
    out = subprocess.run(
        ["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return {int(t): n for t, n in re.findall(r'^Thread (\d+) \(\w+\): "(.*)"', out, re.M)}


def _threads(pid: int, names: dict[int, str]) -> dict[str, tuple[float, ...]]:
    """Per thread name (numbered threads of one pool summed): CPU and switches."""
    out: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0, 0, 0.0])
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = names.get(int(task.name)) or (task / "comm").read_text().strip()
            figures = _stat(task)
        except OSError:
            continue
        name = re.sub(r"_\d+$", "_N", name)
        out[name] = [a + b for a, b in zip(out[name], figures, strict=True)]
    return {k: tuple(v) for k, v in out.items()}


def _postgres_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "postgres":
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _snapshot(root: int, names: dict[int, str]) -> dict[str, tuple[float, ...]]:
    """CPU and switches by thread of the server's processes, and by PostgreSQL pid
    (`pg:<pid>`; only pids in both snapshots are compared)."""
    snap: dict[str, tuple[float, ...]] = {}
    pids = _tree(root)
    for index, pid in enumerate(pids):
        label = "server" if len(pids) == 1 else ("supervisor" if index == 0 else f"child{index}")
        for name, figures in _threads(pid, names).items():
            snap[f"{label}:{name}"] = figures
    for pid in _postgres_pids():
        try:
            snap[f"pg:{pid}"] = _stat(Path(f"/proc/{pid}"))
        except OSError:
            continue
    return snap


def _connections(pids: list[int], port: int) -> dict[int, int]:
    """Established connections on `port` each process holds."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    counts = {pid: 0 for pid in pids}
    for pid in pids:
        counts[pid] = len(re.findall(rf"pid={pid},", out))
    return counts


def _backends(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchone()[0]
            - 1
        )


def _commits(url: str) -> int:
    """Transactions the database committed so far (a batch of gets is one)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def _pin(pids: list[int]) -> None:
    """Each process (every thread of it) on one core of its own, round robin."""
    cores = sorted(os.sched_getaffinity(0))
    for n, pid in enumerate(pids):
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(cores[n % len(cores)]), str(pid)],
            check=True,
            capture_output=True,
        )


SYSCALLS = ("epoll_wait", "recvfrom", "sendto", "futex", "getpid")


def _perf(pids: list[int], seconds: float) -> subprocess.Popen[str] | None:
    """perf stat counting the server's syscalls, if perf is here."""
    if not shutil.which("perf"):
        return None
    events = ",".join(f"syscalls:sys_enter_{name}" for name in SYSCALLS)
    return subprocess.Popen(
        [
            "perf",
            "stat",
            "-x,",
            "-e",
            f"raw_syscalls:sys_enter,cpu-migrations,context-switches,{events}",
            "-p",
            ",".join(map(str, pids)),
            "--",
            "sleep",
            str(seconds),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(
    base_url: str,
    processes: int,
    seconds: int,
    env: dict[str, str],
    connections: int = 32,
    pin: bool = False,
) -> dict:
    """One wrk run of gets by id on a fresh database; figures per get."""
    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-gets-"))
    db = PostgresDatabase(base_url)
    try:
        server = _server(tmp, db, processes, **env)
        try:
            pid = server.proc.pid  # type: ignore[union-attr]
            user = signup(Api(server.url)).access
            api = Api(server.url, user)
            ids = [
                api.post("/api/data/todos", json={"title": "x", "done": False}).json()["data"]["id"]
                for _ in range(200)
            ]
            script = tmp / "get.lua"
            script.write_text(GET_LUA % (user, ",".join(f'"{i}"' for i in ids)))
            time.sleep(1)
            load = os.getloadavg()[0]
            spread: dict[int, int] = {}

            def look() -> None:
                time.sleep(seconds / 2)
                spread.update(_connections(_tree(pid)[1:] or [pid], server.port))

            looker = threading.Thread(target=look)
            if pin:
                _pin(_tree(pid)[1:] or [pid])
            names: dict[int, str] = {}
            for p in _tree(pid):
                names.update(_names(p))
            before = _snapshot(pid, names)
            commits0 = _commits(db.url)
            perf = _perf(_tree(pid), seconds - 1)
            child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            looker.start()
            out = subprocess.run(
                ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), server.url],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            for p in _tree(pid):
                names.update(_names(p))
            after = _snapshot(pid, names)
            looker.join()
            commits = _commits(db.url) - commits0
            syscalls: dict[str, float] = {}
            if perf is not None:
                for line in perf.communicate()[1].splitlines():
                    parts = line.split(",")
                    if len(parts) > 2 and parts[0].isdigit():
                        name = parts[2].rpartition("_enter")[2].lstrip("_") or "all"
                        syscalls[parts[2] if "enter" not in parts[2] else name] = int(parts[0])
            backends = _backends(db.url)
            requests_done = int(re.search(r"(\d+) requests in", out).group(1))
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            per: dict[str, list[float]] = collections.defaultdict(lambda: [0.0] * 4)
            scale = (1000, 1, 1, 1000)  # CPU in ms a get, switches a get
            for key, figures in after.items():
                if key.startswith("pg:") and key not in before:
                    continue
                start = before.get(key, (0.0,) * 4)
                acc = per["postgres" if key.startswith("pg:") else key]
                for i, (a, b) in enumerate(zip(figures, start, strict=True)):
                    acc[i] += (a - b) / requests_done * scale[i]
            wrk_cpu = (
                (child1.ru_utime + child1.ru_stime - child0.ru_utime - child0.ru_stime)
                / requests_done
                * 1000
            )
            return {
                "processes": processes,
                "load": load,
                "rps": rps,
                "non2xx": int(non2xx.group(1)) if non2xx else 0,
                "per": per,
                "wrk": wrk_cpu,
                "spread": list(spread.values()),
                "backends": backends,
                "commits": commits / requests_done,
                "syscalls": {k: v / (rps * (seconds - 1)) for k, v in syscalls.items()},
            }
        finally:
            server.stop()
    finally:
        db.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def show(result: dict) -> None:
    """Print one run: totals, then each thread (and PostgreSQL) by CPU a get."""
    per = result["per"]
    server = sum(v[0] for k, v in per.items() if k != "postgres")
    pg = per["postgres"][0]
    print(
        f"\n{result['processes']} process(es): {result['rps']:.0f} gets/s, load "
        f"{result['load']:.2f}, non-2xx {result['non2xx']}, connections per process "
        f"{result['spread']}, database backends {result['backends']}"
    )
    print(
        f"  CPU ms a get: server {server:.3f}, postgres {pg:.3f}, wrk {result['wrk']:.3f}; "
        f"2·S/(S+P+W) = {2 * server / (server + pg + result['wrk']):.2f}"
    )
    print(
        f"  database transactions a get {result['commits']:.3f}; syscalls a get: "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["syscalls"].items())
    )
    print(f"  {'thread':<28} {'cpu ms':>7} {'sys ms':>7} {'vol cs':>7} {'invol cs':>8}  (per get)")
    for key, (cpu, vol, nonvol, sys) in sorted(per.items(), key=lambda kv: -kv[1][0]):
        if cpu > 0.0005 or vol > 0.01:
            print(f"  {key:<28} {cpu:7.3f} {sys:7.3f} {vol:7.3f} {nonvol:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts")
    parser.add_argument("--pin", action="store_true", help="each server process on one core")
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the server")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    print(
        f"# bench/gets_cpu.py {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"env {env or '-'}"
    )
    for _ in range(args.pairs):
        for processes in map(int, args.processes.split(",")):
            show(run(args.database_url, processes, args.seconds, env, args.connections, args.pin))


if __name__ == "__main__":
    main()
