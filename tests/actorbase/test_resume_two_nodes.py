"""Two server processes on one PostgreSQL database (issues 15 and 16): an idempotency
key sent to both commits once, and a live query resumes on the other node."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

from tests.serverproc import ADMIN_TOKEN, Api
from tests.wsclient import WsClient


def put(ent: str, id: str, **data) -> dict:
    return {"entity": ent, "id": id, "op": "set", "data": data}


def test_the_same_key_sent_to_both_nodes_commits_once(two_servers):
    _, nodes = two_servers
    ent = "k" + uuid.uuid4().hex[:10]
    keys = [str(uuid.uuid4()) for _ in range(20)]

    def send(node_key: tuple[int, str]) -> tuple[str, int, bool]:
        node, k = node_key
        api = Api(nodes[node].url, ADMIN_TOKEN)
        ops = [put(ent, k, n=1)]
        r = api.post("/api/mutate", json={"ops": ops}, headers={"Idempotency-Key": k})
        assert r.status_code == 200, r.text
        return k, r.json()["tx"], "Idempotent-Replayed" in r.headers

    work = [(i % 2, k) for k in keys for i in range(4)]  # each key twice to each node
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, work))
    by_key: dict[str, set[int]] = {}
    for k, tx, _ in answers:
        by_key.setdefault(k, set()).add(tx)
    assert all(len(txs) == 1 for txs in by_key.values())
    assert sum(not replayed for _, _, replayed in answers) == len(keys)
    txs = sorted(next(iter(t)) for t in by_key.values())
    assert txs == list(range(txs[0], txs[0] + len(keys)))  # one commit per key, no more
    listed = Api(nodes[1].url, ADMIN_TOKEN).get(f"/api/data/{ent}?limit=100").json()
    assert listed["total"] == len(keys)


def test_a_live_query_resumes_on_the_other_node(two_servers):
    """A client of a node that went away subscribes on another with the last tx it saw
    and gets one q-diff of what it missed."""
    _, (a, b) = two_servers
    ent = "f" + uuid.uuid4().hex[:10]
    api_b = Api(b.url, ADMIN_TOKEN)

    def mutate(*ops: dict) -> int:
        r = api_b.post("/api/mutate", json={"ops": list(ops)})
        assert r.status_code == 200, r.text
        return r.json()["tx"]

    mutate(put(ent, "x", n=1), put(ent, "y", n=2))
    q = {ent: {"$order": {"n": "asc"}}}

    async def go():
        c = await WsClient.connect(a.url, ADMIN_TOKEN)
        await c.send({"type": "subscribe", "id": "s", "query": q})
        seen = (await c.expect("q-init", id="s"))["tx"]
        c.close()
        await asyncio.to_thread(mutate, {"entity": ent, "id": "x", "op": "delete"})
        last = await asyncio.to_thread(mutate, put(ent, "z", n=3))
        c = await WsClient.connect(b.url, ADMIN_TOKEN)
        await c.send({"type": "subscribe", "id": "s", "query": q, "since": seen})
        d = await c.expect("q-diff", id="s")
        assert (d["tx"], d["removed"], [r["id"] for r in d["added"]]) == (last, ["x"], ["z"])
        assert [m for m in await c.quiet() if m.get("id") == "s"] == []
        c.close()
        # And the other way, to a node whose own feed has not routed that tx.
        c = await WsClient.connect(a.url, ADMIN_TOKEN)
        await c.send({"type": "subscribe", "id": "t", "query": q, "since": last})
        d = await c.expect("q-diff", id="t")
        assert (d["tx"], d["added"], d["removed"]) == (last, [], [])
        c.close()

    asyncio.run(go())
