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


def delta(change: dict) -> tuple[str, str, dict]:
    """(event, userId, data) of a delta, which carries only the one peer."""
    assert set(change) == {"type", "room", "event", "peer"}, change
    assert set(change["peer"]) == {"id", "userId", "data"}
    return change["event"], change["peer"]["userId"], change["peer"]["data"]


def test_enter_update_leave_disconnect(server, anon):
    """The socket that enters gets the room as a snapshot; every other member gets only
    that peer's join, each update, and its leave (with its last data)."""
    name = room()
    alice, bob = signup(anon), signup(anon)

    async def go():
        a = await WsClient.connect(server.url, alice.access)
        b = await WsClient.connect(server.url, bob.access)
        await a.send({"type": "presence-enter", "room": name, "data": {"name": "A"}})
        change = await a.expect("presence-change", room=name)
        assert [(p["userId"], p["data"]) for p in change["peers"]] == [(alice.id, {"name": "A"})]
        await b.send({"type": "presence-enter", "room": name, "data": {"name": "B"}})
        snapshot = await b.expect("presence-change", room=name)
        assert {(p["userId"], p["data"]["name"]) for p in snapshot["peers"]} == {
            (alice.id, "A"),
            (bob.id, "B"),
        }
        b_id = next(p["id"] for p in snapshot["peers"] if p["userId"] == bob.id)
        change = await a.expect("presence-change", room=name)
        assert delta(change) == ("join", bob.id, {"name": "B"}) and change["peer"]["id"] == b_id
        view = await asyncio.to_thread(peers_of, server, name, bob.access)
        assert view["room"] == name and {p["data"]["name"] for p in view["peers"]} == {"A", "B"}
        assert all(set(p) >= {"id", "data"} for p in view["peers"])

        await b.send({"type": "presence-update", "room": name, "data": {"name": "B2"}})
        for c in (a, b):  # the sender hears its own update too
            assert delta(await c.expect("presence-change", room=name)) == (
                "update",
                bob.id,
                {"name": "B2"},
            )

        await b.send({"type": "presence-leave", "room": name})
        change = await a.expect("presence-change", room=name)
        assert delta(change) == ("leave", bob.id, {"name": "B2"}) and change["peer"]["id"] == b_id
        await b.send({"type": "presence-update", "room": name, "data": {}})
        assert (await b.expect("error"))["error"]["code"] == "NOT_FOUND"
        assert [m for m in await b.quiet(0.2) if m["type"] == "presence-change"] == []

        await b.send({"type": "presence-enter", "room": name, "data": {"name": "B3"}})
        assert len((await b.expect("presence-change", room=name))["peers"]) == 2
        assert delta(await a.expect("presence-change", room=name))[0] == "join"
        b.close()  # a socket that closes leaves all its rooms
        assert delta(await a.expect("presence-change", room=name)) == (
            "leave",
            bob.id,
            {"name": "B3"},
        )
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
        assert {m["event"] for m in changes} == {"update"}
        assert changes[-1]["peer"]["data"] == {"i": 9}
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
