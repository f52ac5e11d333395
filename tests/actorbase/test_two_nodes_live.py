"""Live queries across two server processes on one PostgreSQL database: a subscriber
on either node hears of every commit from both, in tx order, also after the feed's
connection was cut."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

import psycopg

from store.txfeed import APPLICATION_NAME
from tests.serverproc import ADMIN_TOKEN, Api
from tests.wsclient import SseClient, WsClient


def _write(api: Api, ent: str, op: str, row_id: str, **data) -> int:
    body = {"ops": [{"entity": ent, "id": row_id, "op": op, "data": data}]}
    if op == "delete":
        del body["ops"][0]["data"]
    response = api.post("/api/mutate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["tx"]


async def _diffs_until(c: WsClient, last: int, seen: int) -> list[dict]:
    """The q-diffs up to tx `last`, checked to come in tx order."""
    out = []
    while seen < last:
        d = await c.expect("q-diff", id="s", within=10)
        assert d["tx"] > seen
        seen = d["tx"]
        out.append(d)
    return out


def test_subscribers_hear_both_nodes_in_tx_order(two_servers):
    db, (a, b) = two_servers
    apis = [Api(a.url, ADMIN_TOKEN), Api(b.url, ADMIN_TOKEN)]
    ent = "t" + uuid.uuid4().hex[:10]

    async def go():
        # Written while no process has a live query (the feeds skip reading them): the
        # first subscriber's q-init still has them.
        before = [
            await asyncio.to_thread(_write, apis[i % 2], ent, "set", f"p{i}", i=i) for i in range(4)
        ]
        ws = await WsClient.connect(a.url, ADMIN_TOKEN)
        await ws.send({"type": "subscribe", "id": "s", "query": {ent: {}}})
        init = await ws.expect("q-init", id="s")
        assert {r["id"] for r in init["data"][ent]} == {f"p{i}" for i in range(4)}
        assert init["tx"] >= max(before)
        sse = await asyncio.to_thread(SseClient, b.url, {ent: {}}, ADMIN_TOKEN)
        assert (await asyncio.to_thread(sse.next_event))[0] == "q-init"

        # Alternating writes, then a concurrent burst on both nodes.
        txs = [
            await asyncio.to_thread(_write, apis[i % 2], ent, "set", f"r{i}", i=i)
            for i in range(10)
        ]

        def burst(n: int) -> list[int]:
            return [_write(apis[n % 2], ent, "set", f"b{n}-{i}", i=i) for i in range(10)]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            txs += [tx for part in pool.map(burst, range(4)) for tx in part]
        expected = {f"r{i}" for i in range(10)} | {f"b{n}-{i}" for n in range(4) for i in range(10)}

        diffs = await _diffs_until(ws, max(txs), init["tx"])
        assert {d["tx"] for d in diffs} == set(txs)  # one diff per commit, each commit's tx
        assert {r["id"] for d in diffs for r in d["added"]} == expected
        seen = set()
        while seen != expected:
            event, event_id, d = await asyncio.to_thread(sse.next_event)
            assert event == "q-diff" and event_id == str(d["tx"])
            seen |= {r["id"] for r in d["added"]}

        # Cut both nodes' feed connections: they reconnect and catch up, losing nothing.
        with psycopg.connect(db.url, autocommit=True) as conn:
            cut = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = current_database()",
                (APPLICATION_NAME,),
            ).fetchone()[0]
        assert cut == 2
        updated = await asyncio.to_thread(_write, apis[1], ent, "merge", "r0", i=100)
        deleted = await asyncio.to_thread(_write, apis[0], ent, "delete", "r1")
        diffs = await _diffs_until(ws, deleted, max(txs))
        sse_diffs = [await asyncio.to_thread(sse.next_event) for _ in range(2)]
        for got in (diffs, [d for _, _, d in sse_diffs]):
            assert [(d["tx"], d["removed"]) for d in got] == [(updated, []), (deleted, ["r1"])]
            assert [(u["id"], u["i"]) for u in got[0]["updated"]] == [("r0", 100)]
        sse.close()
        ws.close()

    asyncio.run(go())
