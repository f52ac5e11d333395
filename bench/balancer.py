"""Three nodes on one PostgreSQL database behind HAProxy (issue 15, item 3).

1. Throughput: gets by id with a user token (wrk -t1, 32 connections), direct to one
   node, through HAProxy to that node alone (the others in maintenance), and through
   HAProxy to all three, alternated; with the CPU the servers and HAProxy used per
   request (the figure a shared box moves least).
2. Node loss: --members WebSocket clients (a live query each, all in one presence
   room) and one SSE client, through HAProxy, and a writer making numbered writes;
   then --kills times: kill -9 the node with the most clients (the first time, the
   SSE client's), and time until every client of it resumed on another node (from the
   last tx it saw), and until every member's room holds exactly the live members (the
   dead node's peers gone: NODE_TIMEOUT's bound); then a new node takes the slot. Counts
   the diffs each client missed or got twice (must be 0).

    python -m bench.balancer [--database-url postgresql://…] [--seconds 10] [--members 12]

Needs haproxy and wrk (Debian packages). Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from bench.realtime import _cpu_seconds
from bench.rest import GET_LUA, wrk
from tests.failover import (
    Cluster,
    KillFigures,
    busiest,
    caught_up,
    kill_and_resume,
    missed_and_duplicated,
)
from tests.handlers.accounts import signup
from tests.resuming_clients import SseMember, Writer, WsMember, until
from tests.serverproc import Api, nodes_on_one_database


def throughput(cluster: Cluster, base: str, token: str, seconds: int, tmp: Path) -> None:
    api = Api(base, token)
    for i in range(200):
        assert api.post("/api/data/todos", json={"title": f"t{i}", "done": False}).ok
    mine = api.get("/api/data/todos", params={"limit": 1000}).json()["data"]
    script = tmp / "get.lua"
    script.write_text(GET_LUA % (token, ",".join(f'"{r["id"]}"' for r in mine)))
    assert cluster.haproxy.proc is not None
    nodes = [n.proc.pid for n in cluster.nodes if n.proc]
    proxy = cluster.haproxy.proc.pid
    idle = sum(_cpu_seconds(p) for p in nodes)
    time.sleep(5)
    idle = sum(_cpu_seconds(p) for p in nodes) - idle
    print(f"idle: the three nodes use {idle / 5 * 1000:.0f} ms CPU a second (heartbeats)")
    print(
        f"{'gets by id, user token, 32 conns':34} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'non-2xx':>7} {'nodes cpu ms/req':>16} {'haproxy':>7}"
    )
    others = [name for name in cluster.slots if name != "s0"]
    for round_ in (1, 2):
        for name, url, spread in (
            ("direct to one node", cluster.nodes[0].url, False),
            ("HAProxy, one node", base, False),
            ("HAProxy, three nodes", base, True),
        ):
            for slot in others:
                verb = "enable" if spread else "disable"
                cluster.haproxy.command(f"{verb} server nodes/{slot}")
                cluster.haproxy.wait_status(slot, "UP" if spread else "MAINT")
            before = [_cpu_seconds(p) for p in (*nodes, proxy)]
            r = wrk(url, script, seconds, 32, proxy)
            used = [_cpu_seconds(p) - b for p, b in zip((*nodes, proxy), before, strict=True)]
            per = 1000 / max(1.0, r["rps"] * seconds)
            print(
                f"{name + f' (round {round_})':34} {r['rps']:7.0f} {r['p50']:7.2f}"
                f" {r['p99']:7.2f} {r['errors']:7d} {sum(used[:-1]) * per:16.3f}"
                f" {used[-1] * per:7.3f}"
            )


async def node_loss(
    cluster: Cluster, base: str, token: str, members_n: int, kills: int, interval: float
) -> None:
    ent = "b" + uuid.uuid4().hex[:10]
    room = f"room-{ent}"
    members = [WsMember(i, base, token, ent, room) for i in range(members_n)]
    tasks = []
    for m in members:
        ready = asyncio.Event()
        tasks.append(asyncio.ensure_future(m.run(ready)))
        await asyncio.wait_for(ready.wait(), 30)
    sse = [SseMember(base, token, ent).start()]
    clients = [*members, *sse]
    writer = Writer(base, token, ent, interval=interval, most=900)
    figures: list[KillFigures] = []
    try:
        await until(lambda: all(c.live.tx is not None for c in clients), 30, "q-inits")
        writer.start()
        await until(lambda: len(writer.acked) >= 20, 30, "the first writes")
        for k in range(kills):
            victim = sse[0].server if k == 0 else busiest(clients, list(cluster.slots))
            assert victim is not None
            figures.append(
                await kill_and_resume(
                    cluster, members, sse, writer, victim, catch_a_write=k == kills - 1
                )
            )
        writer.stop()
        await caught_up(clients, max(writer.acked.values()))
    finally:
        writer.stop()
        for m in members:
            m.close()
        for s in sse:
            s.close()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(
        f"{'kill':>4} {'slot':>4} {'clients':>7} {'all resubscribed':>17} {'presence':>9}"
        f" {'missed':>6} {'twice':>5}"
    )
    for i, f in enumerate(figures, 1):
        print(
            f"{i:4d} {f.slot:>4} {f.clients:7d} {f.resubscribed * 1000:14.0f} ms"
            f" {f.presence:7.2f} s {f.missed:6d} {f.duplicated:5d}"
        )
    top = max(writer.acked.values())
    totals = [missed_and_duplicated(c, writer.acked, top) for c in clients]
    print(
        f"end: {len(writer.acked)} writes acknowledged, {writer.retries} retried with their"
        f" key ({writer.replayed} answered as replays); over {len(clients)} clients"
        f" {sum(m for m, _ in totals)} missed, {sum(d for _, d in totals)} duplicated;"
        f" resumes: {sum(len(c.live.resumes) for c in clients)}, of which q-init:"
        f" {sum(c.live.resumes.count('q-init') for c in clients)}"
    )
    print(f"HAProxy: times each slot was marked down {cluster.haproxy.stat('chkdown')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--members", type=int, default=12)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--no-throughput", action="store_true", help="node loss only")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between writes")
    parser.add_argument("--node-heartbeat", default="0.2")
    parser.add_argument("--node-timeout", default="2")
    args = parser.parse_args()
    if not args.database_url:
        raise SystemExit("bench/balancer.py needs PostgreSQL: --database-url or TEST_DATABASE_URL")
    if not shutil.which("wrk"):
        raise SystemExit("bench/balancer.py needs wrk: apt-get install wrk")
    env = {
        "RATE_LIMIT": "0",
        "NODE_HEARTBEAT": args.node_heartbeat,
        "NODE_TIMEOUT": args.node_timeout,
        "SSE_HEARTBEAT": "1",
    }
    tmp = Path(tempfile.mkdtemp(prefix="ab-bench-"))
    print(
        f"# bench/balancer.py  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
        f"  {platform.node()}  {os.cpu_count()} cores  load {os.getloadavg()[0]:.1f}"
    )
    print(f"# 3 nodes, NODE_HEARTBEAT={args.node_heartbeat} NODE_TIMEOUT={args.node_timeout}")
    try:
        with nodes_on_one_database(args.database_url, tmp, env, env, env) as (_, nodes):
            cluster = Cluster(nodes, tmp, env)
            cluster.haproxy.start()
            try:
                token = signup(Api(cluster.haproxy.url)).access
                if not args.no_throughput:
                    throughput(cluster, cluster.haproxy.url, token, args.seconds, tmp)
                started = time.monotonic()
                asyncio.run(
                    node_loss(
                        cluster, cluster.haproxy.url, token, args.members, args.kills, args.interval
                    )
                )
                print(
                    f"# node-loss part: {time.monotonic() - started:.0f} s,"
                    f" load {os.getloadavg()[0]:.1f}"
                )
            finally:
                cluster.haproxy.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
