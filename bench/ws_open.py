"""WebSocket opens: sockets opened, authenticated and subscribed per second.

Measures actorbase and Parse Server's LiveQuery the same way: client coroutines (spread
over --workers processes, --concurrency in flight in all) each open a WebSocket,
authenticate with one of --users signed-in users' tokens, subscribe one live query and
wait for its initial result; the socket then stays open until the run ends. Prints the
rate (sockets / wall time from the first open to the last initial result) and p50/p99
of one socket's open → initial result time.

- actorbase: `{type:"auth", token}` → `auth-ok`, `subscribe` → `q-init`. Starts its own
  server (SQLite by default; --database-url for PostgreSQL) unless --url is given.
- parse (`--system parse --url http://127.0.0.1:1337/parse`): `{op:"connect",
  sessionToken}` → `connected`, `{op:"subscribe", query:{className:"Todo"}}` →
  `subscribed`; users come from `POST /users`.

The clients are the bare asyncio clients of bench/realtime.py (frames split by hand,
replies matched by substring), so they cost the box little CPU; each run prints the CPU
the server (when its pid is known; also per socket, the figure least moved by a
busy box) and the clients used.

    python -m bench.ws_open [--system actorbase|parse] [--url …] [--sockets 2000]
                            [--concurrency 48] [--workers 2] [--users 50]
                            [--upto open|auth|subscribe]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import requests
import ujson

from bench.realtime import _Client, _client_frame, _cpu_seconds, _raise_fd_limit, _split
from tests.serverproc import PostgresDatabase, ServerProcess

PARSE_APP = "bench"
_DONE = {
    "open": "opened",
    "auth": "opened+authed",
    "subscribe": "opened+authed+subscribed",
}


class _Socket(_Client):
    """A `_Client` that matches replies by a substring (Parse's are `{"op":…}`, not
    `{"type":…}`)."""

    def _on_text(self, text: bytes) -> None:
        for marker, waiter in list(self.waiters.items()):
            if marker in text:
                del self.waiters[marker]
                if not waiter.done():
                    waiter.set_result(text)
                return
        if text.startswith(b'{"type":"ping"'):
            self.send_raw(_client_frame('{"type":"pong"}'))

    async def call_raw(self, message: dict[str, Any], marker: bytes) -> bytes:
        future = asyncio.get_running_loop().create_future()
        self.waiters[marker] = future
        self.send_raw(_client_frame(ujson.dumps(message)))
        return await asyncio.wait_for(future, 60)


def _steps(system: str, token: str, upto: str) -> list[tuple[dict[str, Any], bytes]]:
    """The messages a socket sends after the upgrade, each with its reply's marker,
    up to phase `upto` ("open": none, "auth", or "subscribe": both)."""
    count = {"open": 0, "auth": 1, "subscribe": 2}[upto]
    if system == "parse":
        return [
            ({"op": "connect", "applicationId": PARSE_APP, "sessionToken": token}, b'"connected"'),
            (
                {
                    "op": "subscribe",
                    "requestId": 1,
                    "query": {"className": "Todo", "where": {}},
                    "sessionToken": token,
                },
                b'"subscribed"',
            ),
        ][:count]
    return [
        ({"type": "auth", "token": token}, b'"auth-ok"'),
        (
            {"type": "subscribe", "id": "q", "query": {"todo": {"$where": {}, "$limit": 20}}},
            b'"q-init"',
        ),
    ][:count]


async def _worker_main(
    pipe: Connection,
    system: str,
    ws_url: str,
    tokens: list[str],
    count: int,
    concurrency: int,
    upto: str,
) -> None:
    loop = asyncio.get_running_loop()
    rest = ws_url.removeprefix("ws://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    sockets: list[_Socket] = []
    times: list[float] = []
    errors: list[str] = []
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            started = time.monotonic()
            key = base64.b64encode(os.urandom(16)).decode()
            handshake = (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
            try:
                _, s = await loop.create_connection(lambda: _Socket(handshake), host, int(port))
                sockets.append(s)
                await s.upgraded
                for message, marker in _steps(system, tokens[i % len(tokens)], upto):
                    await s.call_raw(message, marker)
            except Exception as e:  # counted and reported, not fatal
                errors.append(repr(e)[:200])
                return
            times.append(time.monotonic() - started)

    pipe.recv()  # go
    first = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    last = time.monotonic()
    pipe.send((first, last, times, errors[:5], len(errors)))
    pipe.recv()  # stop
    for s in sockets:
        if s.transport is not None:
            s.transport.close()
    await asyncio.sleep(0.2)
    pipe.send("ok")


def _worker(
    pipe: Connection,
    system: str,
    ws_url: str,
    tokens: list[str],
    count: int,
    concurrency: int,
    upto: str,
) -> None:
    _raise_fd_limit()
    asyncio.run(_worker_main(pipe, system, ws_url, tokens, count, concurrency, upto))


def _users(system: str, url: str, n: int) -> list[str]:
    """n signed-in users' tokens, as real clients hold them."""
    tokens = []
    for _ in range(n):
        name = f"bench-{os.urandom(6).hex()}@example.com"
        if system == "parse":
            r = requests.post(
                url + "/users",
                json={"username": name, "password": "correct horse battery"},
                headers={"X-Parse-Application-Id": PARSE_APP, "X-Parse-Revocable-Session": "1"},
                timeout=30,
            )
            r.raise_for_status()
            tokens.append(r.json()["sessionToken"])
        else:
            r = requests.post(
                url + "/api/auth/signup",
                json={"email": name, "password": "correct horse battery"},
                timeout=30,
            )
            r.raise_for_status()
            tokens.append(r.json()["accessToken"])
    return tokens


def _db_cpu(name: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving database `name` (its
    process title is `postgres: CLUSTER: USER DATABASE HOST(PORT) STATE`)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().decode(errors="replace")
            if title.startswith("postgres: ") and f" {name} " in title:
                out[int(entry.name)] = _cpu_seconds(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return out


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def run(args: argparse.Namespace, url: str, ws_url: str, server_pid: int | None) -> None:
    tokens = _users(args.system, url, args.users)
    pipes: list[Connection] = []
    procs: list[mp.Process] = []
    counts = _split(args.sockets, args.workers)
    shares = _split(args.concurrency, args.workers)
    try:
        for count, share in zip(counts, shares, strict=True):
            ours, theirs = mp.Pipe()
            proc = mp.Process(
                target=_worker,
                args=(theirs, args.system, ws_url, tokens, count, max(1, share), args.upto),
                daemon=True,
            )
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        time.sleep(0.5)
        client_pids = [p.pid for p in procs if p.pid is not None]
        cpu0 = [_cpu_seconds(pid) for pid in client_pids]
        srv0 = _cpu_seconds(server_pid) if server_pid else 0.0
        db0 = _db_cpu(args.db_name) if args.db_name else {}
        for pipe in pipes:
            pipe.send("go")
        parts = [pipe.recv() for pipe in pipes]
        srv1 = _cpu_seconds(server_pid) if server_pid else 0.0
        db1 = _db_cpu(args.db_name) if args.db_name else {}
        cpu1 = [_cpu_seconds(pid) for pid in client_pids]
        first = min(p[0] for p in parts)
        last = max(p[1] for p in parts)
        times = [t for p in parts for t in p[2]]
        failed = sum(p[4] for p in parts)
        wall = last - first
        clients = (sum(cpu1) - sum(cpu0)) / wall * 100
        server = (
            f"server {(srv1 - srv0) / wall * 100:.0f}% "
            f"({(srv1 - srv0) / max(1, len(times)) * 1000:.2f} ms a socket), "
            if server_pid
            else ""
        )
        if args.db_name:
            used = sum(t - db0.get(pid, 0.0) for pid, t in db1.items())
            server += (
                f"its PostgreSQL backends {used / wall * 100:.0f}% "
                f"({used / max(1, len(times)) * 1000:.2f} ms a socket), "
            )
        print(
            f"{args.system}: {len(times)} sockets {_DONE[args.upto]} in {wall:.2f} s: "
            f"{len(times) / wall:.0f}/s; open→initial result p50 {_pct(times, 50):.1f} ms, "
            f"p99 {_pct(times, 99):.1f} ms ({args.users} users, {args.concurrency} in flight "
            f"over {args.workers} client processes; cpu: {server}clients {clients:.0f}% of "
            f"one core; load {os.getloadavg()[0]:.2f}; {failed} failed)",
            flush=True,
        )
        for p in parts:
            for e in p[3]:
                print(f"  error: {e}", file=sys.stderr)
        for pipe in pipes:
            pipe.send("stop")
        for pipe in pipes:
            pipe.recv()
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["actorbase", "parse"], default="actorbase")
    parser.add_argument("--url", help="a running server (Parse: its mount, …/parse)")
    parser.add_argument("--pid", type=int, help="the running server's pid, for its CPU")
    parser.add_argument(
        "--db-name",
        help="also count the CPU of the PostgreSQL backends of this database (Parse's: parse)",
    )
    parser.add_argument("--database-url", help="actorbase's own server on PostgreSQL")
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1, help="repeat, one server")
    parser.add_argument(
        "--upto",
        choices=list(_DONE),
        default="subscribe",
        help="stop each socket after this phase (the CPU of each phase, by difference)",
    )
    args = parser.parse_args()
    _raise_fd_limit()
    if args.url or args.system == "parse":
        url = (args.url or "http://127.0.0.1:1337/parse").rstrip("/")
        ws_url = url.replace("http", "ws", 1) + ("" if args.system == "parse" else "/ws")
        for _ in range(args.runs):
            run(args, url, ws_url, args.pid)
        return
    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-wsopen-"))
    db = PostgresDatabase(args.database_url) if args.database_url else None
    server = ServerProcess(
        tmp,
        db.url if db else f"sqlite:///{tmp / 'actorbase.db'}",
        RATE_LIMIT="0",
        ACCESS_TOKEN_TTL="3600",
        LOG_LEVEL="error",
        WS_MAX_CONNECTIONS_PER_USER=str(args.sockets),
        MAX_SUBSCRIPTIONS_PER_USER=str(args.sockets),
    ).start()
    pid = server.proc.pid  # type: ignore[union-attr]
    print(f"server pid {pid}", file=sys.stderr, flush=True)  # for py-spy
    try:
        for _ in range(args.runs):
            run(args, server.url, server.url.replace("http", "ws", 1) + "/ws", pid)
    finally:
        server.stop()
        if db is not None:
            db.drop()


if __name__ == "__main__":
    main()
