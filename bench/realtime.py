"""Realtime benchmark: sockets, live-query diff latency, presence fan-out.

Starts its own server (SQLite by default; --database-url for PostgreSQL) and drives
it from client processes of its own. The clients are bare asyncio WebSocket clients
that split frames by hand and never JSON-parse them (a substring scan finds a diff's
`"ts"` stamps and the presence marker), so on a 2-core box they cost the server as
little CPU as possible; each phase prints the CPU the server and the clients used, to
show which side the figure measures. Prints:

- server RSS per connection and thread count with N sockets, each authenticated with a
  signed-in user's access token (as real clients do: token and session checks
  included) and holding one subscription of its own (a distinct query: no sharing),
  and the rate they were opened, authenticated and subscribed at;
- mutation-to-diff latency p50/p99 with 100, 1,000 and N subscribers to one query
  at 5 writes/s (the writer stamps each row; --sample sockets, spread evenly over
  the fan-out, subtract on receipt; every subscriber counts the diffs it gets);
- the writes' own HTTP round trip in each phase: what any request waits while the
  server fans a diff out;
- presence-change fan-out time in a room of 1,000 (an update sent → the last member
  has it; each member gets the one peer's `update` delta).

    python -m bench.realtime [--sockets 10000] [--workers 4] [--sample 200] [--pin]
                             [--database-url …]

Not run in CI. Raises its own fd limit; the clients are split over --workers processes;
--pin keeps the server on CPU 0 and the clients on the others. The server pid goes to
stderr at start, for `py-spy record -p PID`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import resource
import statistics
import struct
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import requests
import ujson

from tests.serverproc import PostgresDatabase, ServerProcess

QUERY = {"bench": {"$where": {"live": True}, "$order": {"ts": "desc"}, "$limit": 20}}


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- client worker process -------------------------------------------------------------


def _client_frame(text: str) -> bytes:
    """A masked text frame with an all-zero mask (XOR is a no-op; the server only
    unmasks), so sending costs no Python-level masking."""
    data = text.encode()
    n = len(data)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", n)
    return head + b"\0\0\0\0" + data


_PONG = _client_frame('{"type":"pong"}')
_PING = b'{"type":"ping"}'
_SHARED_DIFF = b'{"type":"q-diff","id":"shared",'
_TS = b'"ts":'


class _Client(asyncio.Protocol):
    """A bare WebSocket client on an asyncio Protocol, cheap enough that 10,000 of them
    do not saturate the box they measure: frames are split by hand and never
    JSON-parsed (every server message starts with `{"type":"KIND"`, and a diff's
    latency is read from its `"ts":` fields by substring scan).

    Every client counts the diffs of the shared query it receives; only sampled ones
    also time them.
    """

    def __init__(self, handshake: bytes) -> None:
        self.handshake = handshake
        self.sampled = False
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = False
        self.waiters: dict[bytes, asyncio.Future[bytes]] = {}
        self.subscribed = False
        self.diffs = 0
        self.latencies: list[float] = []
        self.presence_marker: bytes | None = None
        self.presence_seen: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.handshake)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[: buf.find(b"\r\n")]:
                self.upgraded.set_exception(ConnectionError(bytes(buf[:end]).decode()))
                return
            del buf[: end + 4]
            self.upgraded.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + n:
                break
            payload = bytes(buf[pos + head : pos + head + n])
            pos += head + n
            if opcode == 1:
                self._on_text(payload)
            elif opcode == 8:
                self.closed = True
        if pos:
            del buf[:pos]

    def _on_text(self, text: bytes) -> None:
        if text == _PING:
            self.send_raw(_PONG)
            return
        if self.subscribed and text.startswith(_SHARED_DIFF):
            self.diffs += 1
            if self.sampled:
                now = time.time()
                at = text.find(_TS)
                while at >= 0:
                    stop = at + 5
                    while text[stop] not in b",}":
                        stop += 1
                    self.latencies.append(now - float(text[at + 5 : stop]))
                    at = text.find(_TS, stop)
            return
        if self.presence_marker is not None and self.presence_marker in text:
            self.presence_seen = self.presence_seen or time.time()
        kind = text[9 : text.find(b'"', 9)]
        waiter = self.waiters.pop(kind, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(text)

    def send_raw(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    async def call(self, message: dict[str, Any], reply: str) -> bytes:
        future = asyncio.get_running_loop().create_future()
        self.waiters[reply.encode()] = future
        self.send_raw(_client_frame(ujson.dumps(message)))
        return await asyncio.wait_for(future, 60)


async def _worker_main(pipe: Connection, ws_url: str, tokens: list[str], base: int) -> None:
    loop = asyncio.get_running_loop()
    host, _, port = ws_url.removeprefix("ws://").partition("/")[0].partition(":")
    clients: list[_Client] = []
    sem = asyncio.Semaphore(200)

    async def connect(i: int) -> None:
        async with sem:
            key = base64.b64encode(os.urandom(16)).decode()
            handshake = (
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
            _, c = await loop.create_connection(lambda: _Client(handshake), host, int(port))
            await c.upgraded
            await c.call({"type": "auth", "token": tokens[i % len(tokens)]}, "auth-ok")
            # Another entity than QUERY's: writes to "bench" must reach only its subscribers.
            query = {"own": {"$where": {"owner": base + i}}}
            await c.call({"type": "subscribe", "id": "own", "query": query}, "q-init")
            clients.append(c)

    while True:
        command, arg = await loop.run_in_executor(None, pipe.recv)
        if command == "connect":
            await asyncio.gather(*(connect(i) for i in range(arg)))
            pipe.send(len(clients))
        elif command == "subscribe":  # the first `count` clients join the shared query
            count, stride = arg

            async def join(c: _Client) -> None:
                async with sem:
                    await c.call({"type": "subscribe", "id": "shared", "query": QUERY}, "q-init")
                    c.subscribed = True

            async def leave(c: _Client) -> None:
                async with sem:
                    c.subscribed = False
                    await c.call({"type": "unsubscribe", "id": "shared"}, "unsubscribe-ok")

            await asyncio.gather(*(leave(c) for c in clients[count:] if c.subscribed))
            await asyncio.gather(*(join(c) for c in clients[:count] if not c.subscribed))
            for i, c in enumerate(clients):
                c.diffs, c.latencies, c.sampled = 0, [], (base + i) % stride == 0
            pipe.send("ok")
        elif command == "latencies":
            pipe.send(
                (
                    [x for c in clients if c.subscribed for x in c.latencies],
                    sum(c.diffs for c in clients if c.subscribed),
                )
            )
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
                c.presence_marker, c.presence_seen = f'"m":"{arg}"'.encode(), None
            pipe.send("ok")
        elif command == "update":
            clients[0].send_raw(
                _client_frame(
                    ujson.dumps({"type": "presence-update", "room": "bench", "data": {"m": arg}})
                )
            )
            pipe.send(time.time())
        elif command == "seen":
            pipe.send([c.presence_seen for c in clients if c.presence_marker is not None])
        elif command == "stop":
            for c in clients:
                if c.transport is not None:
                    c.transport.close()
            pipe.send("ok")
            return


def _worker(
    pipe: Connection, ws_url: str, tokens: list[str], base: int, cpus: set[int] | None
) -> None:
    _raise_fd_limit()
    if cpus:
        os.sched_setaffinity(0, cpus)
    asyncio.run(_worker_main(pipe, ws_url, tokens, base))


# -- the driver ------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Cpu:
    """CPU used by the server and by the client workers over one phase, as a share of
    one core, to tell which side a figure measures."""

    def __init__(self, server: int, clients: list[int]) -> None:
        self.pids = (server, clients)
        self.start = self._now()

    def _now(self) -> tuple[float, float, float]:
        server, clients = self.pids
        return (
            time.monotonic(),
            _cpu_seconds(server),
            sum(_cpu_seconds(pid) for pid in clients),
        )

    def report(self) -> str:
        end = self._now()
        wall = end[0] - self.start[0]
        server, clients = ((end[i] - self.start[i]) / wall * 100 for i in (1, 2))
        return f"cpu: server {server:.0f}%, clients {clients:.0f}% of one core"


def _pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of a running process (threads started later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cpus)


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


def _write_loop(url: str, token: str, seconds: float, rate: float) -> list[float]:
    """Write `rate` rows a second; the round trip of each write, in seconds (a request
    that waits while the loop fans out shows it here)."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    trips: list[float] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        row = {"live": True, "ts": time.time()}
        op = {"entity": "bench", "id": f"w{time.time_ns()}", "op": "set", "data": row}
        sent = time.monotonic()
        session.post(url + "/api/mutate", json={"ops": [op]}, headers=headers, timeout=30)
        trips.append(time.monotonic() - sent)
        time.sleep(max(0.0, start + len(trips) / rate - time.monotonic()))
    return trips


def _sampled(counts: list[int], subscribers: int, stride: int) -> int:
    """How many subscribers time their diffs: global index % stride == 0 among the
    first of each worker's clients."""
    bases = [sum(counts[:w]) for w in range(len(counts))]
    share = _split(subscribers, len(counts))
    return sum(
        1 for b, n in zip(bases, share, strict=True) for i in range(n) if (b + i) % stride == 0
    )


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--database-url")
    parser.add_argument(
        "--sample",
        type=int,
        default=200,
        help="sockets that time their diffs (spread evenly); every subscriber counts them",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on CPU 0, clients on the other CPUs (a 2-core box: one core each)",
    )
    args = parser.parse_args()
    _raise_fd_limit()

    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-rt-"))
    db = PostgresDatabase(args.database_url) if args.database_url else None
    url = db.url if db else f"sqlite:///{tmp / 'actorbase.db'}"
    # Every socket is one user's (see below): lift the per-user caps to the run's size
    # (each socket holds its own live query and, in turn, the shared one).
    server = ServerProcess(
        tmp,
        url,
        RATE_LIMIT="0",
        ACCESS_TOKEN_TTL="3600",
        LOG_LEVEL="error",
        WS_MAX_CONNECTIONS_PER_USER=str(max(1, args.sockets)),
        MAX_SUBSCRIPTIONS_PER_USER=str(max(1, 2 * args.sockets)),
    ).start()
    pid = server.proc.pid  # type: ignore[union-attr]
    cpus = os.sched_getaffinity(0)
    client_cpus = cpus - {min(cpus)} if args.pin and len(cpus) > 1 else None
    if client_cpus:
        _pin(pid, {min(cpus)})
    print(f"server pid {pid}", file=sys.stderr, flush=True)  # for py-spy
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
                target=_worker,
                args=(theirs, ws_url, tokens, sum(counts[:w]), client_cpus),
                daemon=True,
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
        where = "server on CPU 0, clients on the rest" if client_cpus else "not pinned"
        print(
            f"backend: {'postgresql' if db else 'sqlite'}; {len(cpus)} CPUs shared by server "
            f"and {args.workers} client processes ({where}); load {os.getloadavg()[0]:.2f}"
        )
        print(
            f"sockets: {opened} authenticated with a user's access token, one own subscription "
            f"each (opened in {took:.1f} s: {opened / took:.0f} opened+authed+subscribed/s)"
        )
        print(
            f"server RSS: {base['VmRSS'] / 1024:.1f} MiB idle -> {after['VmRSS'] / 1024:.1f} MiB; "
            f"{per_socket:.1f} KiB per socket; threads: {after['Threads']}"
        )

        client_pids = [p.pid for p in procs if p.pid is not None]
        for subscribers in sorted({100, 1000, opened}):
            # Subscribers are the first clients of each worker: sample every stride-th.
            stride = max(1, subscribers // max(1, args.sample))
            _all(pipes, "subscribe", [(n, stride) for n in _split(subscribers, args.workers)])
            cpu = _Cpu(pid, client_pids)
            trips = _write_loop(server.url, tokens[0], args.seconds, 5.0)
            writes = len(trips)
            time.sleep(2)
            parts = _all(pipes, "latencies", [None] * len(pipes))
            lat = [x for part, _ in parts for x in part]
            got = sum(n for _, n in parts)
            print(
                f"diff latency, {subscribers:>5} subscribers to one query, 5 writes/s: "
                f"p50 {_pct(lat, 50):.1f} ms, p99 {_pct(lat, 99):.1f} ms "
                f"({len(lat)} timed on {_sampled(counts, subscribers, stride)} sampled sockets; "
                f"{got} diffs of {writes * subscribers} expected; {cpu.report()})"
            )
            print(
                f"    the writes' own round trip meanwhile: p50 {_pct(trips, 50):.1f} ms, "
                f"p99 {_pct(trips, 99):.1f} ms"
            )
        _all(pipes, "subscribe", [(0, 1)] * len(pipes))

        room = min(1000, opened)
        _all(pipes, "enter", _split(room, args.workers))
        times = []
        cpu = _Cpu(pid, client_pids)
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
            f"member (runs: {', '.join(f'{t * 1000:.0f} ms/{n}' for t, n in times)}; "
            f"{cpu.report()})"
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
