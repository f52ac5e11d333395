"""Presence over WebSocket and its REST view, against the real server."""

from __future__ import annotations

import asyncio
import uuid

import requests

from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, error_of
from tests.wsclient import WsClient


def room() -> str:
    return "doc-" + uuid.uuid4().hex[:8]


def peers_of(server, name: str, token: str = ADMIN_TOKEN) -> dict:
    r = requests.get(
        server.url + f"/api/presence/{name}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_enter_update_leave_disconnect(server, anon):
    name = room()
    alice, bob = signup(anon), signup(anon)

    async def go():
        a = await WsClient.connect(server.url, alice.access)
        b = await WsClient.connect(server.url, bob.access)
        await a.send({"type": "presence-enter", "room": name, "data": {"name": "A"}})
        change = await a.expect("presence-change", room=name)
        assert [(p["userId"], p["data"]) for p in change["peers"]] == [(alice.id, {"name": "A"})]
        await b.send({"type": "presence-enter", "room": name, "data": {"name": "B"}})
        for c in (a, b):
            change = await c.expect("presence-change", room=name)
            if len(change["peers"]) == 1:
                change = await c.expect("presence-change", room=name)
            assert {p["data"]["name"] for p in change["peers"]} == {"A", "B"}
        view = await asyncio.to_thread(peers_of, server, name, bob.access)
        assert view["room"] == name and {p["data"]["name"] for p in view["peers"]} == {"A", "B"}
        assert all(set(p) >= {"id", "data"} for p in view["peers"])

        await b.send({"type": "presence-update", "room": name, "data": {"name": "B2"}})
        change = await a.expect("presence-change", room=name)
        assert {p["data"]["name"] for p in change["peers"]} == {"A", "B2"}

        await b.send({"type": "presence-leave", "room": name})
        change = await a.expect("presence-change", room=name)
        assert [p["userId"] for p in change["peers"]] == [alice.id]
        await b.send({"type": "presence-update", "room": name, "data": {}})
        assert (await b.expect("error"))["error"]["code"] == "NOT_FOUND"

        await b.send({"type": "presence-enter", "room": name, "data": {"name": "B3"}})
        await a.expect("presence-change", room=name)
        b.close()  # a socket that closes leaves all its rooms
        change = await a.expect("presence-change", room=name)
        assert [p["userId"] for p in change["peers"]] == [alice.id]
        a.close()
        await asyncio.sleep(0.2)
        assert (await asyncio.to_thread(peers_of, server, name))["peers"] == []

    asyncio.run(go())


def test_limits_and_validation(make_server, backend):
    server = make_server(
        backend, PRESENCE_MAX_BYTES="100", PRESENCE_MAX_ROOMS="2", PRESENCE_RATE="2"
    )

    async def go():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        for bad in ({"room": "no spaces"}, {"room": ""}, {"room": "r", "data": [1]}):
            await c.send({"type": "presence-enter", **bad})
            assert (await c.expect("error"))["error"]["code"] == "INVALID_ARGUMENT"
        await c.send({"type": "presence-enter", "room": "r", "data": {"x": "y" * 200}})
        assert (await c.expect("error"))["error"]["code"] == "PAYLOAD_TOO_LARGE"
        await c.send({"type": "presence-enter", "room": "r1"})
        await c.send({"type": "presence-enter", "room": "r2"})
        await c.send({"type": "presence-enter", "room": "r3"})
        assert "at most 2" in (await c.expect("error"))["error"]["message"]
        await c.quiet(0.2)
        for i in range(10):  # over the rate: coalesced, the latest wins
            await c.send({"type": "presence-update", "room": "r1", "data": {"i": i}})
        changes = [m for m in await c.quiet(1.5) if m["type"] == "presence-change"]
        assert 1 <= len(changes) < 10
        assert changes[-1]["peers"][0]["data"] == {"i": 9}
        c.close()

    asyncio.run(go())
    r = requests.get(
        server.url + "/api/presence/bad%20room",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=5,
    )
    assert error_of(r)["code"] == "INVALID_ARGUMENT"
    assert (
        error_of(requests.get(server.url + "/api/presence/r1", timeout=5))["code"]
        == "UNAUTHENTICATED"
    )
