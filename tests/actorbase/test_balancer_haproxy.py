"""Three nodes on one PostgreSQL database behind HAProxy (issue 15, item 3): clients
talk only to the balancer. A node with clients is killed with kill -9, three times
(each time replaced before the next): its WebSocket and SSE clients reconnect through
the balancer, auth again and resume from the last tx they saw; every numbered write
acknowledged to the writer reaches every client exactly once; presence shows the
reconnected members and drops the dead node's peers; a write whose answer was lost is
retried with its Idempotency-Key and applied once."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.failover import Cluster, busiest, caught_up, kill_and_resume, missed_and_duplicated
from tests.handlers.accounts import signup
from tests.haproxy import HAPROXY, require_haproxy
from tests.resuming_clients import SseMember, Writer, WsMember, live_query, until
from tests.serverproc import Api, nodes_on_one_database

ENV = {
    "NODE_HEARTBEAT": "0.2",
    "NODE_TIMEOUT": "2",
    "SSE_HEARTBEAT": "1",
    "WS_PING_INTERVAL": "5",
}
MEMBERS = 6
DOC = Path(__file__).resolve().parents[2] / "docs" / "load-balancer.md"


def test_the_documented_config_is_valid_haproxy(tmp_path):
    require_haproxy()
    blocks = re.findall(r"```haproxy\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(blocks[0])
    check = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for line in ("timeout tunnel", "option httpchk GET /api/admin/health", "balance roundrobin"):
        assert line in blocks[0]


@pytest.mark.timeout(300)  # about 20 s alone; several times that on a busy box
def test_three_kills_behind_haproxy_miss_nothing_and_repeat_nothing(pg_base_url, tmp_path):
    require_haproxy()
    with nodes_on_one_database(pg_base_url, tmp_path, ENV, ENV, ENV) as (_, nodes):
        cluster = Cluster(nodes, tmp_path, ENV)
        balancer = cluster.haproxy.start()
        try:
            asyncio.run(_scenario(cluster, balancer.url))
        finally:
            balancer.stop()


async def _scenario(cluster: Cluster, base: str) -> None:
    user = await asyncio.to_thread(signup, Api(base))
    ent = "b" + uuid.uuid4().hex[:10]
    room = f"room-{ent}"
    members = [WsMember(i, base, user.access, ent, room) for i in range(MEMBERS)]
    tasks = []
    for m in members:
        ready = asyncio.Event()
        tasks.append(asyncio.ensure_future(m.run(ready)))
        await asyncio.wait_for(ready.wait(), 30)
    sse = [SseMember(base, user.access, ent).start()]
    writer = Writer(base, user.access, ent, interval=0.05, most=900)
    try:
        await until(lambda: all(c.live.tx is not None for c in [*members, *sse]), 30, "q-inits")
        clients = [*members, *sse]
        # Spread over the nodes by round robin: every node has clients.
        assert {c.server for c in clients} == set(cluster.slots), [c.server for c in clients]
        writer.start()
        await until(lambda: len(writer.acked) >= 20, 30, "the first writes")
        figures = []
        for k in range(3):
            # The first kill takes the SSE client's node; then the busiest one.
            victim = sse[0].server if k == 0 else busiest(clients, list(cluster.slots))
            # The last one loses a write's answer: it is retried with its key.
            figures.append(
                await kill_and_resume(cluster, members, sse, writer, victim, catch_a_write=k == 2)
            )
        writer.stop()
        assert not writer.failures, writer.failures
        acked = writer.acked
        assert sorted(acked) == list(range(1, len(acked) + 1))
        await caught_up(clients, max(acked.values()))

        for f in figures:
            assert f.clients > 0 and (f.missed, f.duplicated) == (0, 0), f
        # Every client heard of every acknowledged write exactly once, each resume was
        # a replay (not a fresh q-init), and its result is a fresh query's.
        fresh = await asyncio.to_thread(
            Api(base, user.access).post, "/api/query", json=live_query(ent)
        )
        assert fresh.status_code == 200, fresh.text
        fresh_rows = {r["id"]: r for r in fresh.json()[ent]}
        assert len(fresh_rows) == len(acked)
        for c in clients:
            assert missed_and_duplicated(c, acked, max(acked.values())) == (0, 0)
            assert set(c.live.adds.values()) == {1}
            assert c.live.rows == fresh_rows
            assert c.live.resumes == ["q-diff"] * len(c.live.resumes)
            assert c.errors == []
        resumed = sum(len(c.live.resumes) for c in clients)
        assert resumed >= 3 and sse[0].live.resumes, (resumed, sse[0].live.resumes)

        # Each write was applied once, retried or not: one commit per acknowledged n.
        node = cluster.node("s0")
        commits = await asyncio.to_thread(
            node.sql,
            "SELECT count(*) FROM ab_tx WHERE changes::text LIKE ?",
            (f'%"{ent}"%',),
        )
        assert commits[0][0] == len(acked), (commits, len(acked), writer.retries)
        assert writer.retries >= 1

        # Presence: every member sees exactly the live members, REST (any node) too,
        # and no dead socket's peer ever came back after it left.
        live = {m.conn_id: m.data for m in members}
        for m in members:
            assert {p: v["data"] for p, v in m.peers.items()} == live
            assert m.rejoined == []
        rest = await asyncio.to_thread(Api(base, user.access).get, f"/api/presence/{room}")
        assert {p["id"]: p["data"] for p in rest.json()["peers"]} == live
        assert sum(m.connections for m in members) >= MEMBERS + 3
    finally:
        writer.stop()
        for m in members:
            m.close()
        for s in sse:
            s.close()
        await asyncio.gather(*tasks, return_exceptions=True)
