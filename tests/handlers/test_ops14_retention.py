"""Resume across a prune (issue 14, item 1), through the real server on both backends
with a tiny TX_RETENTION and sweeps every 0.1 s: a WebSocket `subscribe` with a `since`
the log was pruned past gets a fresh q-init, and no resume, WebSocket or SSE, returns
a wrong result while pruning runs beside it (a q-diff applied to what the client held,
or a q-init, always equals the rows as they are)."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest

from tests.handlers.test_ops_retention import (
    RETAINED,
    _apply,
    _delete,
    _fill,
    _floor,
    _mutate,
    _query,
    _set,
    _wait_floor,
)
from tests.serverproc import ADMIN_TOKEN, Api, ServerProcess
from tests.wsclient import SseClient, WsClient

ROUNDS = 12


@pytest.fixture(scope="module")
def server(make_module_server, backend) -> ServerProcess:
    return make_module_server(backend, TX_RETENTION=str(RETAINED), SWEEP_INTERVAL="0.1")


async def _subscribe(ws: WsClient, sid: str, ent: str, since: int | None = None) -> dict:
    message: dict[str, Any] = {"type": "subscribe", "id": sid, "query": {ent: {}}}
    if since is not None:
        message["since"] = since
    await ws.send(message)
    while True:  # a diff of a subscription just left may still arrive first
        reply = await ws._read(10)
        assert reply is not None, "closed waiting for the answer to subscribe"
        if reply.get("id") == sid:
            assert reply["type"] in ("q-init", "q-diff"), reply
            return reply


def _rows_of(reply: dict[str, Any], ent: str, held: dict[str, dict[str, Any]]) -> dict:
    """What the client holds after `reply`: a q-init replaces, a q-diff applies."""
    if reply["type"] == "q-init":
        return {r["id"]: r for r in reply["data"][ent]}
    rows = {k: dict(v) for k, v in held.items()}
    _apply(rows, reply)
    return rows


def _churn(
    server: ServerProcess, n: int, seen: int, rng: random.Random, present: set[str], ent: str
) -> None:
    """Round `n` of changes to `ent` (whose rows are `present`) since tx `seen`: a few
    (the log still holds them), then enough other commits to push them out (waiting
    for the prune), then a random number (racing the sweep), in turn."""
    api = Api(server.url, ADMIN_TOKEN)
    for _ in range(rng.randint(1, 3)):
        key = f"r{rng.randint(0, 5)}"
        if key in present and rng.random() < 0.3:
            _mutate(api, _delete(ent, key))
            present.discard(key)
        else:
            _mutate(api, _set(ent, key, v=rng.randint(0, 1000)))
            present.add(key)
    if n % 3 == 1:
        _fill(api, RETAINED + 2)
        _wait_floor(server, seen)
    elif n % 3 == 2:
        _fill(api, rng.randint(0, RETAINED + 2))


def test_websocket_resume_past_the_floor_gets_a_fresh_q_init(server):
    api = Api(server.url, ADMIN_TOKEN)
    ent = "wsr" + uuid.uuid4().hex[:8]
    _mutate(api, _set(ent, "a", v=0), _set(ent, "b", v=0))

    async def go() -> None:
        ws = await WsClient.connect(server.url, ADMIN_TOKEN)
        init = await _subscribe(ws, "s1", ent)
        assert init["type"] == "q-init"
        seen = init["tx"]
        ws.close()
        _mutate(api, _delete(ent, "b"))
        last = _mutate(api, _set(ent, "c", v=2))
        _fill(api, RETAINED + 2)
        await asyncio.to_thread(_wait_floor, server, seen)
        ws = await WsClient.connect(server.url, ADMIN_TOKEN)
        reply = await _subscribe(ws, "s2", ent, since=seen)
        assert reply["type"] == "q-init" and reply["tx"] >= last
        assert {r["id"]: r["v"] for r in reply["data"][ent]} == {"a": 0, "c": 2}
        tx = _mutate(api, _set(ent, "a", v=3))  # and it is live again
        d = await ws.expect("q-diff", id="s2")
        assert (d["tx"], d["updated"][0]["v"]) == (tx, 3)
        ws.close()

    asyncio.run(go())


def test_no_websocket_resume_is_wrong_while_the_log_is_pruned(server):
    api = Api(server.url, ADMIN_TOKEN)
    ent = "wsp" + uuid.uuid4().hex[:8]
    rng = random.Random(14)
    kinds: set[str] = set()
    present: set[str] = set()

    async def go() -> None:
        ws = await WsClient.connect(server.url, ADMIN_TOKEN)
        reply = await _subscribe(ws, "s0", ent)
        held, seen = _rows_of(reply, ent, {}), reply["tx"]
        for n in range(1, ROUNDS + 1):
            await ws.send({"type": "unsubscribe", "id": f"s{n - 1}"})
            await asyncio.to_thread(_churn, server, n, seen, rng, present, ent)
            reply = await _subscribe(ws, f"s{n}", ent, since=seen)
            kinds.add(reply["type"])
            held, seen = _rows_of(reply, ent, held), reply["tx"]
            truth = await asyncio.to_thread(_query, api, ent)
            # Nothing of `ent` changes after the reply: what it says is what is there.
            assert held == truth, (n, reply)
        ws.close()

    asyncio.run(go())
    assert _floor(server) > 0
    assert kinds == {"q-init", "q-diff"}  # both ways of resuming were taken


def test_no_sse_resume_is_wrong_while_the_log_is_pruned(server):
    api = Api(server.url, ADMIN_TOKEN)
    ent = "ssp" + uuid.uuid4().hex[:8]
    rng = random.Random(41)
    present: set[str] = set()
    kinds: set[str] = set()
    sse = SseClient(server.url, {ent: {}}, ADMIN_TOKEN)
    event, seen, reply = sse.next_event()
    sse.close()
    held = _rows_of({"type": event, **reply}, ent, {})
    for n in range(1, ROUNDS + 1):
        _churn(server, n, int(seen), rng, present, ent)
        sse = SseClient(server.url, {ent: {}}, ADMIN_TOKEN, **{"Last-Event-ID": seen})
        try:
            event, seen, reply = sse.next_event()
        finally:
            sse.close()
        kinds.add(event)
        held = _rows_of({"type": event, **reply}, ent, held)
        assert held == _query(api, ent), (n, event, reply)
    assert _floor(server) > 0
    assert kinds == {"q-init", "q-diff"}
