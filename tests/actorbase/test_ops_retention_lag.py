"""A process whose commit feed lags past TX_RETENTION (two servers on one PostgreSQL
database, one of them stopped while the other writes and prunes) re-reads its live
queries when it wakes: its subscribers miss no change."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from typing import Any

import pytest

from tests.serverproc import (
    ADMIN_TOKEN,
    Api,
    nodes_on_one_database,
)
from tests.wsclient import WsClient

RETAINED = 5


@pytest.fixture
def nodes(pg_base_url, tmp_path):
    """(writer, lagger): the writer prunes every 0.2 s; the lagger never sweeps (it is
    stopped mid-test, and must not be stopped holding the pruning lock)."""
    writer_env = {"TX_RETENTION": str(RETAINED), "SWEEP_INTERVAL": "0.2"}
    lagger_env = {"SWEEP_INTERVAL": "3600"}
    with nodes_on_one_database(pg_base_url, tmp_path, writer_env, lagger_env) as (_, nodes):
        yield nodes[0], nodes[1]


def _mutate(api: Api, *ops: dict[str, Any]) -> int:
    response = api.post("/api/mutate", json={"ops": list(ops)})
    assert response.status_code == 200, response.text
    return response.json()["tx"]


def _set(entity: str, id: str, **data: Any) -> dict[str, Any]:
    return {"entity": entity, "id": id, "op": "set", "data": data}


def _apply(rows: dict[str, dict[str, Any]], diff: dict[str, Any]) -> None:
    for row in diff["added"]:
        rows[row["id"]] = row
    for row in diff["updated"]:
        rows[row["id"]] = {**rows[row["id"]], **row}
    for id in diff["removed"]:
        del rows[id]


def test_a_lagging_process_rereads_its_live_queries(nodes):
    writer, lagger = nodes
    api = Api(writer.url, ADMIN_TOKEN)
    ent = "lag" + uuid.uuid4().hex[:8]

    def floor() -> int:
        return int(writer.sql("SELECT value FROM ab_counters WHERE name = 'tx_floor'")[0][0])

    def query() -> dict[str, dict[str, Any]]:
        response = api.post("/api/query", json={ent: {}})
        assert response.status_code == 200, response.text
        return {r["id"]: r for r in response.json()[ent]}

    async def go() -> None:
        ws = await WsClient.connect(lagger.url, ADMIN_TOKEN)
        await ws.send({"type": "subscribe", "id": "s", "query": {ent: {}}})
        init = await ws.expect("q-init", id="s")
        rows = {r["id"]: r for r in init["data"][ent]}
        live = await asyncio.to_thread(_mutate, api, _set(ent, "a", v=0), _set(ent, "b", v=0))
        _apply(rows, await ws.expect("q-diff", id="s", tx=live))

        assert lagger.proc is not None
        lagger.proc.send_signal(signal.SIGSTOP)
        try:
            first = await asyncio.to_thread(_mutate, api, _set(ent, "a", v=1))
            await asyncio.to_thread(
                _mutate, api, {"entity": ent, "id": "b", "op": "delete"}, _set(ent, "c", v=2)
            )
            for i in range(RETAINED + 2):
                await asyncio.to_thread(_mutate, api, _set("filler", f"f{i % 3}", i=i))
            deadline = time.monotonic() + 20
            while await asyncio.to_thread(floor) < first:
                assert time.monotonic() < deadline, "the writer never pruned the log"
                await asyncio.sleep(0.05)
        finally:
            lagger.proc.send_signal(signal.SIGCONT)

        expected = await asyncio.to_thread(query)
        assert set(expected) == {"a", "c"}
        while rows != expected:
            _apply(rows, await ws.expect("q-diff", id="s", within=15))
        # And it follows the log again from there.
        tx = await asyncio.to_thread(_mutate, api, _set(ent, "d", v=3))
        d = await ws.expect("q-diff", id="s", tx=tx)
        assert [r["id"] for r in d["added"]] == ["d"]
        ws.close()

    asyncio.run(go())
    assert "fell behind the tx log's retention" in lagger.log()
