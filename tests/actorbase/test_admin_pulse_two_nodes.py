"""Two server processes on one PostgreSQL database: /api/admin/pulse on either lists
both nodes with their own figures and sums them for the cluster; /api/admin/rooms and
a lock through one node act on both (what the dashboard's Live system and Users pages
show)."""

from __future__ import annotations

import asyncio
import time

from tests.handlers.accounts import PASSWORD, signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of
from tests.wsclient import WsClient


def _eventually(fetch, check, within: float = 15):
    deadline = time.monotonic() + within
    while True:
        body = fetch()
        if check(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_pulse_lists_every_node_and_sums_the_cluster(two_servers):
    _, servers = two_servers
    a, b = (Api(s.url, ADMIN_TOKEN) for s in servers)
    for i in range(30):  # mutations on node B only
        assert b.post("/api/data/pulsed", json={"i": i}).status_code == 201

    def by_node(body):
        return {n["node"]: n for n in body["nodes"]}

    body = _eventually(
        lambda: a.get("/api/admin/pulse").json(),
        lambda body: (
            len(body["nodes"]) == 2 and max(n["mutations"]["perSecond"] for n in body["nodes"]) >= 2
        ),
    )
    nodes = by_node(body)
    assert len(nodes) == 2 and body["node"] in nodes
    (other,) = set(nodes) - {body["node"]}
    assert nodes[other]["mutations"]["perSecond"] >= 2  # B's figures, sent with its heartbeat
    assert nodes[body["node"]]["mutations"]["perSecond"] == 0
    cluster = body["cluster"]
    assert cluster["mutations"]["perSecond"] == round(
        sum(n["mutations"]["perSecond"] for n in nodes.values()), 3
    )
    assert cluster["mutations"]["p99Ms"] == max(n["mutations"]["p99Ms"] for n in nodes.values())


def test_rooms_and_locks_span_the_nodes(two_servers):
    _, servers = two_servers
    a, b = (Api(s.url, ADMIN_TOKEN) for s in servers)
    account = signup(Api(servers[1].url))

    async def go() -> None:
        ws = await WsClient.connect(servers[1].url, account.access)  # on node B
        await ws.send({"type": "presence-enter", "room": "spanning", "data": {}})
        await ws.expect("presence-change", room="spanning")
        rooms = a.get("/api/admin/rooms").json()["rooms"]  # asked of node A
        assert {"room": "spanning", "peers": 1} in rooms
        pulse = a.get("/api/admin/pulse").json()
        assert pulse["cluster"]["rooms"] == 1
        assert a.patch(f"/api/admin/users/{account.id}", json={"locked": True}).status_code == 200
        code, _ = await ws.closed_with(within=15)  # B's session check ends it
        assert code == 4001

    asyncio.run(go())
    refused = Api(servers[1].url).post(
        "/api/auth/signin", json={"email": account.email, "password": PASSWORD}
    )
    assert error_of(refused)["code"] == "PERMISSION_DENIED"
    assert b.get(f"/api/admin/users/{account.id}").json()["locked"] is True
