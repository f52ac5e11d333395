"""PostgreSQL round trips per REST create, counted on the wire.

Starts a server whose DATABASE_URL points at a small TCP proxy in front of
PostgreSQL. The proxy reads the frontend protocol as it passes and counts, per
connection, round trips (each time the client sends after the server last spoke: it
had to wait for an answer), statements executed and COMMITs. Then it POSTs creates
one at a time (groups of 1) and from many threads at once (groups as large as the
transactor makes them), and prints round trips per create on the write connection
(the one that COMMITs) and on all connections. The admin token is used so that
only the write path touches the database. Not run in CI.

    python -m bench.pg_roundtrips --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import datetime
import os
import platform
import shutil
import struct
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.serverproc import ADMIN_TOKEN, Api, PostgresDatabase, ServerProcess, free_port


@dataclasses.dataclass
class Wire:
    """What one client connection did."""

    round_trips: int = 0
    statements: int = 0
    commits: int = 0
    client_spoke_last: bool = False
    buffer: bytes = b""
    started: bool = False
    prepared: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    portal: bytes = b""
    """The statement text bound to the unnamed portal (psycopg's only one)."""

    def client_bytes(self, data: bytes) -> None:
        if not self.client_spoke_last:
            self.round_trips += 1
            self.client_spoke_last = True
        self.buffer += data
        while True:
            if not self.started:  # the startup message has no type byte
                if len(self.buffer) < 4:
                    return
                (length,) = struct.unpack("!I", self.buffer[:4])
                if len(self.buffer) < length:
                    return
                self.buffer = self.buffer[length:]
                self.started = True
                continue
            if len(self.buffer) < 5:
                return
            kind = self.buffer[:1]
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            body, self.buffer = self.buffer[5 : 1 + length], self.buffer[1 + length :]
            self._message(kind, body)

    def _message(self, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            self._executed(body.rstrip(b"\0"))
        elif kind == b"P":
            name, rest = body.split(b"\0", 1)
            self.prepared[name] = rest.split(b"\0", 1)[0]
        elif kind == b"B":
            _portal, rest = body.split(b"\0", 1)
            self.portal = self.prepared.get(rest.split(b"\0", 1)[0], b"")
        elif kind == b"E":
            self._executed(self.portal)

    def _executed(self, query: bytes) -> None:
        self.statements += 1
        if query.strip().upper() == b"COMMIT":
            self.commits += 1

    def server_bytes(self) -> None:
        self.client_spoke_last = False


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of PostgreSQL, on a thread of its own."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.wires: list[Wire] = []
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        wire = Wire()
        self.wires.append(wire)
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            try:
                while data := await src.read(65536):
                    if up:
                        wire.client_bytes(data)
                    else:
                        wire.server_bytes()
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    def snapshot(self) -> list[tuple[int, int, int]]:
        """(round trips, statements, commits) per connection so far."""
        return [(w.round_trips, w.statements, w.commits) for w in list(self.wires)]


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    query = "sslmode=disable&gssencmode=disable"
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}", query=query))


def _creates(api: Api, n: int, clients: int, label: str) -> None:
    local = threading.local()

    def one(i: int) -> None:
        if not hasattr(local, "api"):
            local.api = Api(api.base, api.token)  # a requests.Session per thread
        body = {"title": f"{label} {i}", "done": False, "priority": 3}
        response = local.api.post("/api/data/todos", json=body)
        assert response.status_code == 201, response.text

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(n)))


def measure(proxy: Proxy, api: Api, n: int, clients: int) -> dict[str, float]:
    before = proxy.snapshot()
    _creates(api, n, clients, f"c{clients}")
    after = proxy.snapshot()
    deltas = [
        tuple(a - b for a, b in zip(now, before[i] if i < len(before) else (0, 0, 0), strict=True))
        for i, now in enumerate(after)
    ]
    writer = max(deltas, key=lambda d: d[2])
    return {
        "group": n / writer[2],
        "writer_rt": writer[0] / n,
        "writer_statements": writer[1] / n,
        "all_rt": sum(d[0] for d in deltas) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="postgresql://…")
    parser.add_argument("--creates", type=int, default=400)
    parser.add_argument("--clients", type=int, default=48)
    args = parser.parse_args()
    base = urlsplit(args.database_url)
    proxy = Proxy(base.hostname or "127.0.0.1", base.port or 5432)
    db = PostgresDatabase(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="ab-rt-"))
    server = ServerProcess(
        tmp, _through(db.url, proxy.port), RATE_LIMIT="0", LOG_LEVEL="warning"
    ).start()
    try:
        api = Api(server.url, ADMIN_TOKEN)
        _creates(api, 20, 1, "warm-up")
        rows = [
            ("one client (groups of 1)", measure(proxy, api, args.creates, 1)),
            (f"{args.clients} clients", measure(proxy, api, args.creates, args.clients)),
        ]
    finally:
        server.stop()
        db.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# bench/pg_roundtrips.py  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"# {platform.node()}  {os.cpu_count()} cores  creates={args.creates} (admin token)")
    print(
        f"{'workload':26} {'creates/commit':>14} {'writer RT/create':>16} "
        f"{'stmts/create':>12} {'all RT/create':>13}"
    )
    for name, r in rows:
        print(
            f"{name:26} {r['group']:14.1f} {r['writer_rt']:16.2f} "
            f"{r['writer_statements']:12.1f} {r['all_rt']:13.2f}"
        )


if __name__ == "__main__":
    main()
