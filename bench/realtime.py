"""Realtime benchmark: sockets, live-query diff latency, presence fan-out.

Starts its own server (SQLite by default; --database-url for PostgreSQL) and drives
it from client processes of its own (Tornado WebSocket clients, so the server is
measured as a real client sees it). Prints:

- server RSS per connection and thread count with N authenticated sockets, each
  holding one subscription of its own (a distinct query: no sharing);
- mutation-to-diff latency p50/p99 with 100, 1,000 and N subscribers to one query
  at 5 writes/s (the writer stamps each row; clients subtract on receipt);
- presence-change fan-out time in a room of 1,000 (an update sent → the last member
  has it).

    python -m bench.realtime [--sockets 10000] [--workers 4] [--database-url …]

Not run in CI. Raises its own fd limit; the clients are split over --workers processes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import requests
import tornado.websocket
import ujson

from tests.serverproc import PostgresDatabase, ServerProcess

QUERY = {"bench": {"$where": {"live": True}, "$order": {"ts": "desc"}, "$limit": 20}}


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- client worker process -------------------------------------------------------------


class _Client:
    def __init__(self, ws: tornado.websocket.WebSocketClientConnection) -> None:
        self.ws = ws
        self.waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.latencies: list[float] | None = None
        self.presence_marker: str | None = None
        self.presence_seen: float | None = None

    async def pump(self) -> None:
        while True:
            text = await self.ws.read_message()
            if text is None:
                return
            now = time.time()
            m = ujson.loads(text)
            kind = m["type"]
            if kind == "ping":
                await self.ws.write_message('{"type":"pong"}')
            elif kind == "q-diff" and self.latencies is not None:
                self.latencies.extend(now - r["ts"] for r in m["added"] if "ts" in r)
            elif (
                kind == "presence-change"
                and self.presence_marker is not None
                and any(p["data"].get("m") == self.presence_marker for p in m["peers"])
            ):
                self.presence_seen = self.presence_seen or now
            waiter = self.waiters.pop(kind, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(m)

    async def call(self, message: dict[str, Any], reply: str) -> dict[str, Any]:
        future = asyncio.get_running_loop().create_future()
        self.waiters[reply] = future
        await self.ws.write_message(ujson.dumps(message))
        return await asyncio.wait_for(future, 60)


async def _worker_main(pipe: Connection, ws_url: str, tokens: list[str], base: int) -> None:
    clients: list[_Client] = []
    pumps: list[asyncio.Task[None]] = []
    sem = asyncio.Semaphore(200)

    async def connect(i: int) -> None:
        async with sem:
            c = _Client(await tornado.websocket.websocket_connect(ws_url))
            pumps.append(asyncio.ensure_future(c.pump()))
            await c.call({"type": "auth", "token": tokens[i % len(tokens)]}, "auth-ok")
            # Another entity than QUERY's: writes to "bench" must reach only its subscribers.
            query = {"own": {"$where": {"owner": base + i}}}
            await c.call({"type": "subscribe", "id": "own", "query": query}, "q-init")
            clients.append(c)

    while True:
        command, arg = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        if command == "connect":
            await asyncio.gather(*(connect(i) for i in range(arg)))
            pipe.send(len(clients))
        elif command == "subscribe":  # the first `arg` clients join the shared query

            async def join(c: _Client) -> None:
                async with sem:
                    await c.call({"type": "subscribe", "id": "shared", "query": QUERY}, "q-init")
                    c.latencies = []

            async def leave(c: _Client) -> None:
                if c.latencies is not None:
                    async with sem:
                        await c.call({"type": "unsubscribe", "id": "shared"}, "unsubscribe-ok")
                    c.latencies = None

            await asyncio.gather(*(leave(c) for c in clients[arg:]))
            await asyncio.gather(*(join(c) for c in clients[:arg] if c.latencies is None))
            for c in clients[:arg]:
                c.latencies = []
            pipe.send("ok")
        elif command == "latencies":
            pipe.send([x for c in clients if c.latencies is not None for x in c.latencies])
        elif command == "enter":  # the first `arg` clients enter the room

            async def enter(c: _Client, i: int) -> None:
                async with sem:
                    await c.call(
                        {"type": "presence-enter", "room": "bench", "data": {"i": base + i}},
                        "presence-change",
                    )

            await asyncio.gather(*(enter(c, i) for i, c in enumerate(clients[:arg])))
            pipe.send("ok")
        elif command == "mark":
            for c in clients:
                c.presence_marker, c.presence_seen = arg, None
            pipe.send("ok")
        elif command == "update":
            await clients[0].ws.write_message(
                ujson.dumps({"type": "presence-update", "room": "bench", "data": {"m": arg}})
            )
            pipe.send(time.time())
        elif command == "seen":
            pipe.send([c.presence_seen for c in clients if c.presence_marker is not None])
        elif command == "stop":
            for c in clients:
                c.ws.close()
            pipe.send("ok")
            return


def _worker(pipe: Connection, ws_url: str, tokens: list[str], base: int) -> None:
    _raise_fd_limit()
    asyncio.run(_worker_main(pipe, ws_url, tokens, base))


# -- the driver ------------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            out[key] = int(value.split()[0])
    return out


def _signup(url: str, n: int) -> list[str]:
    tokens = []
    for _ in range(n):
        email = f"bench-{os.urandom(6).hex()}@example.com"
        r = requests.post(
            url + "/api/auth/signup",
            json={"email": email, "password": "correct horse battery"},
            timeout=30,
        )
        r.raise_for_status()
        tokens.append(r.json()["accessToken"])
    return tokens


def _all(pipes: list[Connection], command: str, args: list[Any]) -> list[Any]:
    for pipe, arg in zip(pipes, args, strict=True):
        pipe.send((command, arg))
    return [pipe.recv() for pipe in pipes]


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _write_loop(url: str, token: str, seconds: float, rate: float) -> int:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    count = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        row = {"live": True, "ts": time.time()}
        op = {"entity": "bench", "id": f"w{time.time_ns()}", "op": "set", "data": row}
        session.post(url + "/api/mutate", json={"ops": [op]}, headers=headers, timeout=30)
        count += 1
        time.sleep(max(0.0, start + count / rate - time.monotonic()))
    return count


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    _raise_fd_limit()

    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-rt-"))
    db = PostgresDatabase(args.database_url) if args.database_url else None
    url = db.url if db else f"sqlite:///{tmp / 'actorbase.db'}"
    server = ServerProcess(
        tmp, url, RATE_LIMIT="0", ACCESS_TOKEN_TTL="3600", LOG_LEVEL="error"
    ).start()
    pid = server.proc.pid  # type: ignore[union-attr]
    pipes: list[Connection] = []
    procs: list[mp.Process] = []
    try:
        # One user for every socket: rows are owner-only by default, and subscribers
        # of one query under one user share one computation (the case measured).
        tokens = _signup(server.url, 1)
        base = _proc_status(pid)
        ws_url = server.url.replace("http", "ws", 1) + "/ws"
        counts = _split(args.sockets, args.workers)
        for w in range(args.workers):
            ours, theirs = mp.Pipe()
            proc = mp.Process(
                target=_worker, args=(theirs, ws_url, tokens, sum(counts[:w])), daemon=True
            )
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        started = time.monotonic()
        opened = sum(_all(pipes, "connect", counts))
        took = time.monotonic() - started
        time.sleep(2)
        after = _proc_status(pid)
        per_socket = (after["VmRSS"] - base["VmRSS"]) / opened
        print(f"backend: {'postgresql' if db else 'sqlite'}; 2-core box shared with clients")
        print(
            f"sockets: {opened} authenticated, one own subscription each (opened in {took:.1f} s)"
        )
        print(
            f"server RSS: {base['VmRSS'] / 1024:.1f} MiB idle -> {after['VmRSS'] / 1024:.1f} MiB; "
            f"{per_socket:.1f} KiB per socket; threads: {after['Threads']}"
        )

        for subscribers in sorted({100, 1000, opened}):
            _all(pipes, "subscribe", _split(subscribers, args.workers))
            writes = _write_loop(server.url, tokens[0], args.seconds, 5.0)
            time.sleep(2)
            lat = [x for part in _all(pipes, "latencies", [None] * len(pipes)) for x in part]
            print(
                f"diff latency, {subscribers:>5} subscribers to one query, 5 writes/s: "
                f"p50 {_pct(lat, 50):.1f} ms, p99 {_pct(lat, 99):.1f} ms "
                f"({len(lat)} diffs of {writes * subscribers} expected)"
            )
        _all(pipes, "subscribe", [0] * len(pipes))

        room = min(1000, opened)
        _all(pipes, "enter", _split(room, args.workers))
        times = []
        for i in range(5):
            marker = f"m{i}"
            _all(pipes, "mark", [marker] * len(pipes))
            time.sleep(0.5)  # over PRESENCE_RATE's interval since the last update
            pipes[0].send(("update", marker))
            sent = pipes[0].recv()
            time.sleep(2)
            seen = [t for part in _all(pipes, "seen", [None] * len(pipes)) for t in part]
            got = [t for t in seen if t is not None]
            times.append((max(got) - sent, len(got)))
        fanout = statistics.median(t for t, _ in times)
        print(
            f"presence fan-out, room of {room}: median {fanout * 1000:.1f} ms to the last "
            f"member (runs: {', '.join(f'{t * 1000:.0f} ms/{n}' for t, n in times)})"
        )
        print(f"server threads at the end: {_proc_status(pid)['Threads']}")
        _all(pipes, "stop", [None] * len(pipes))
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        server.stop()
        if db is not None:
            db.drop()


if __name__ == "__main__":
    main()
