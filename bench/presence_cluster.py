"""Presence across nodes: how long a change takes to reach the room's members on the
other processes (issue 15: p99 ≤ 100 ms at a room of 100 peers over 3 nodes).

Starts --nodes servers on one fresh PostgreSQL database (TEST_DATABASE_URL or
--database-url), puts --peers WebSockets in one room spread evenly over them, then
has the peers take turns sending an update (--rate a second in all, round robin, so
no peer is held back by PRESENCE_RATE), each stamped with the send time. Every member
notes when it hears each update (one client process: one clock). Prints p50/p99/max
of send → heard, for members on other nodes than the sender and on the same node, and
of send → the last member has it; plus the server CPU used.

    python -m bench.presence_cluster [--nodes 3] [--peers 100] [--updates 300] [--rate 20]

Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tornado.websocket
import ujson

from tests.serverproc import ADMIN_TOKEN, PostgresDatabase, ServerProcess

ROOM = "bench-room"


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name:<34} n={len(ms):>6}  p50 {statistics.median(ms):7.2f} ms  "
        f"p99 {_pct(ms, 99):7.2f} ms  max {max(ms):7.2f} ms"
    )


class Peer:
    def __init__(self, node: int, ws: tornado.websocket.WebSocketClientConnection) -> None:
        self.node = node
        self.ws = ws
        self.id = ""
        self.heard: dict[int, float] = {}  # update number -> when heard

    async def read(self) -> None:
        while True:
            text = await self.ws.read_message()
            if text is None:
                return
            now = time.perf_counter()
            m = ujson.loads(text)
            if m.get("type") == "presence-change" and m.get("event") == "update":
                k = m["peer"]["data"].get("k")
                if k is not None:
                    self.heard[k] = now


async def _connect(url: str, node: int, n: int) -> Peer:
    ws = await tornado.websocket.websocket_connect(url.replace("http", "ws", 1) + "/ws")
    await ws.write_message(ujson.dumps({"type": "auth", "token": ADMIN_TOKEN}))
    assert ujson.loads(await ws.read_message())["type"] == "auth-ok"
    await ws.write_message(ujson.dumps({"type": "presence-enter", "room": ROOM, "data": {"n": n}}))
    peer = Peer(node, ws)
    while not peer.id:
        m = ujson.loads(await ws.read_message())
        if "peers" in m:
            peer.id = next(p["id"] for p in m["peers"] if p["data"].get("n") == n)
    return peer


async def _run(urls: list[str], peers_n: int, updates: int, rate: float) -> dict[str, list[float]]:
    peers = [await _connect(urls[i % len(urls)], i % len(urls), i) for i in range(peers_n)]
    readers = [asyncio.ensure_future(p.read()) for p in peers]
    await asyncio.sleep(2)  # the joins settle
    sent: dict[int, tuple[float, Peer]] = {}
    for k in range(updates):
        sender = peers[k % peers_n]
        sent[k] = (time.perf_counter(), sender)
        await sender.ws.write_message(
            ujson.dumps(
                {"type": "presence-update", "room": ROOM, "data": {"n": k % peers_n, "k": k}}
            )
        )
        await asyncio.sleep(1 / rate)
    await asyncio.sleep(2)
    other, same, last, missed = [], [], [], 0
    for k, (at, sender) in sent.items():
        times = []
        for p in peers:
            heard = p.heard.get(k)
            if heard is None:
                missed += 1
                continue
            (other if p.node != sender.node else same).append(heard - at)
            times.append(heard - at)
        if times:
            last.append(max(times))
    for r in readers:
        r.cancel()
    for p in peers:
        p.ws.close()
    print(f"updates not heard by a member: {missed}")
    return {"other node": other, "same node": same, "last member": last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--peers", type=int, default=100)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    if not args.database_url:
        sys.exit("needs PostgreSQL: --database-url or TEST_DATABASE_URL")
    db = PostgresDatabase(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="ab-presence-bench-"))
    servers = [
        ServerProcess(tmp / f"n{i}", db.url, PRESENCE_MAX_PEERS=str(args.peers + 10))
        for i in range(args.nodes)
    ]
    try:
        for s in servers:
            s.start()
        pids = [s.proc.pid for s in servers if s.proc is not None]
        cpu0 = [_cpu(pid) for pid in pids]
        t0 = time.perf_counter()
        figures = asyncio.run(_run([s.url for s in servers], args.peers, args.updates, args.rate))
        wall = time.perf_counter() - t0
        cpu = [_cpu(pid) - c for pid, c in zip(pids, cpu0, strict=True)]
        print(
            f"presence across {args.nodes} nodes, room of {args.peers} peers, "
            f"{args.updates} updates at {args.rate}/s (send → heard):"
        )
        for name, values in figures.items():
            print("  " + _line(name, values))
        print(
            "  server CPU: "
            + ", ".join(f"{c:.1f} s" for c in cpu)
            + f" over {wall:.1f} s ({sum(cpu) / wall * 100:.0f}% of a core in all)"
        )
    finally:
        for s in servers:
            s.stop()
        db.drop()


if __name__ == "__main__":
    main()
