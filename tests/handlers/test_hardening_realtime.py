"""Bounded realtime work per user (issue 12, item 2): sockets and live queries per user,
presence as one peer's delta with a cap on room size, and every WebSocket message
counted by WS_MESSAGE_RATE; against the real server on both backends."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import requests
import ujson

from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of
from tests.wsclient import RawWs, SseClient, WsClient, apply_presence

MAX_CONNECTIONS, MAX_SUBSCRIPTIONS, RATE, MAX_PEERS = 3, 4, 10, 3


@pytest.fixture(scope="module")
def server(make_module_server, backend):
    return make_module_server(
        backend,
        WS_MAX_CONNECTIONS_PER_USER=str(MAX_CONNECTIONS),
        MAX_SUBSCRIPTIONS_PER_USER=str(MAX_SUBSCRIPTIONS),
        WS_MESSAGE_RATE=str(RATE),
        PRESENCE_MAX_PEERS=str(MAX_PEERS),
    )


@pytest.fixture
def anon(server) -> Api:
    return Api(server.url)


def entity() -> str:
    return "t" + uuid.uuid4().hex[:10]


def sse_get(server, token: str, query: dict) -> requests.Response:
    """An SSE request that is expected to be refused (so it ends)."""
    return requests.get(
        server.url + "/api/subscribe",
        params={"q": ujson.dumps(query)},
        headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        timeout=10,
    )


async def connect_when_free(server, token: str, within: float = 10) -> WsClient:
    """A socket of a user at the cap, once one of theirs has closed on the server."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        c = await WsClient.connect(server.url)
        await c.send({"type": "auth", "token": token})
        m = await _auth_reply(c)
        if m["type"] == "auth-ok":
            return c
        assert loop.time() < deadline, m
        await asyncio.sleep(0.1)


async def _auth_reply(c: WsClient) -> dict:
    while True:
        for kind in ("auth-ok", "auth-error"):
            for i, m in enumerate(c.inbox):
                if m["type"] == kind:
                    return c.inbox.pop(i)
        m = await c._read(10)
        assert m is not None, c.close_code
        c.inbox.append(m)


async def subscribe(c: WsClient, sub_id: str, ent: str) -> dict:
    """`q-init` or `error` for a subscribe."""
    await c.send({"type": "subscribe", "id": sub_id, "query": {ent: {}}})
    while True:
        for i, m in enumerate(c.inbox):
            if m.get("id") == sub_id and m["type"] in ("q-init", "error"):
                return c.inbox.pop(i)
        m = await c._read(10)
        assert m is not None, c.close_code
        c.inbox.append(m)


# -- connections per user ------------------------------------------------------------


def test_connections_per_user_are_capped_and_come_back(server, anon):
    """Over WS_MAX_CONNECTIONS_PER_USER the auth is refused (auth-error, close 4029) and
    an SSE stream is 400 RESOURCE_EXCEEDED; other users and the admin token are not
    held to it, and a closed socket or stream gives its place back."""
    alice, bob = signup(anon), signup(anon)
    ent = entity()

    async def go():
        socks = [await WsClient.connect(server.url, alice.access) for _ in range(MAX_CONNECTIONS)]
        extra = await WsClient.connect(server.url)
        await extra.send({"type": "auth", "token": alice.access})
        refused = await extra.expect("auth-error")
        assert f"at most {MAX_CONNECTIONS}" in refused["message"]
        code, reason = await extra.closed_with()
        assert code == 4029 and "Too many connections" in (reason or "")

        r = await asyncio.to_thread(sse_get, server, alice.access, {ent: {}})
        assert r.status_code == 400 and error_of(r)["code"] == "RESOURCE_EXCEEDED"
        assert r.headers["Content-Type"].startswith("application/json")

        others = [await WsClient.connect(server.url, bob.access)]
        others += [await WsClient.connect(server.url, ADMIN_TOKEN) for _ in range(5)]

        socks.pop().close()
        socks.append(await connect_when_free(server, alice.access))

        # An SSE stream takes a place like a socket, and gives it back when it ends.
        socks.pop().close()
        await asyncio.sleep(0.3)
        sse = await asyncio.to_thread(SseClient, server.url, {ent: {}}, alice.access)
        for _ in range(50):  # the closed socket may not have left the server yet
            if sse.response.status_code == 200:
                break
            sse.close()
            await asyncio.sleep(0.1)
            sse = await asyncio.to_thread(SseClient, server.url, {ent: {}}, alice.access)
        assert (await asyncio.to_thread(sse.next_event))[0] == "q-init"
        extra = await WsClient.connect(server.url)
        await extra.send({"type": "auth", "token": alice.access})
        assert (await _auth_reply(extra))["type"] == "auth-error"
        sse.close()
        socks.append(await connect_when_free(server, alice.access))
        for c in socks + others:
            c.close()

    asyncio.run(go())


def test_a_socket_closed_during_its_auth_gives_its_place_back(server, anon):
    """A socket that closes while its token is being checked holds no place after."""
    frank = signup(anon)

    async def go():
        for _ in range(4 * MAX_CONNECTIONS):
            c = await WsClient.connect(server.url)
            await c.send({"type": "auth", "token": frank.access})
            c.close()
        await asyncio.sleep(0.5)
        socks = [await connect_when_free(server, frank.access) for _ in range(MAX_CONNECTIONS)]
        for c in socks:
            c.close()

    asyncio.run(go())


# -- live queries per user -----------------------------------------------------------


def test_live_queries_per_user_are_capped_over_all_sockets(server, anon):
    """MAX_SUBSCRIPTIONS_PER_USER counts a user's live queries over all their sockets and
    streams; over it `subscribe` gets RESOURCE_EXCEEDED with its id. Unsubscribing and
    closing a socket give the capacity back; the admin token is not held to it."""
    carol = signup(anon)
    ent = entity()

    async def go():
        a = await WsClient.connect(server.url, carol.access)
        b = await WsClient.connect(server.url, carol.access)
        for sub_id in ("s1", "s2", "s3"):
            assert (await subscribe(a, sub_id, ent))["type"] == "q-init"
        assert (await subscribe(b, "s4", ent))["type"] == "q-init"
        over = await subscribe(b, "s5", ent)
        assert over["type"] == "error" and over["id"] == "s5"
        assert over["error"]["code"] == "RESOURCE_EXCEEDED" and over["error"]["status"] == 400
        assert f"at most {MAX_SUBSCRIPTIONS}" in over["error"]["message"]
        r = await asyncio.to_thread(sse_get, server, carol.access, {ent: {}})
        assert r.status_code == 400 and error_of(r)["code"] == "RESOURCE_EXCEEDED"

        await a.send({"type": "unsubscribe", "id": "s1"})
        await a.expect("unsubscribe-ok", id="s1")
        assert (await subscribe(b, "s5", ent))["type"] == "q-init"
        assert (await subscribe(b, "s6", ent))["type"] == "error"

        a.close()  # its two live queries go with it
        for sub_id in ("s6", "s7"):
            for _ in range(50):
                if (await subscribe(b, sub_id, ent))["type"] == "q-init":
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("capacity did not come back")
        assert (await subscribe(b, "s8", ent))["type"] == "error"
        b.close()

        admin = await WsClient.connect(server.url, ADMIN_TOKEN)
        for i in range(MAX_SUBSCRIPTIONS + 2):
            assert (await subscribe(admin, f"a{i}", ent))["type"] == "q-init"
        admin.close()

    asyncio.run(go())


# -- WS_MESSAGE_RATE -----------------------------------------------------------------


def test_every_message_type_counts_against_the_rate(server, anon):
    """A flood of pongs, of auths or of malformed messages gets RATE_LIMITED errors,
    and the socket stays open and is served once the bucket refills."""
    dave = signup(anon)
    ent = entity()

    async def flood(c: WsClient, message: object) -> list[dict]:
        await asyncio.sleep(2 * 2 / RATE + 0.2)  # a full bucket
        for _ in range(6 * RATE):
            await c.send(message)
        return await c.quiet(0.5)

    async def go():
        c = await WsClient.connect(server.url, dave.access)
        for message in ({"type": "pong"}, {"type": "auth", "token": dave.access}, "not json"):
            got = await flood(c, message)
            limited = [m for m in got if m["type"] == "error"]
            limited = [m for m in limited if m["error"]["code"] == "RATE_LIMITED"]
            assert limited, (message, got)
            assert limited[0]["error"]["status"] == 429 and not c.closed
            if isinstance(message, dict) and message["type"] == "auth":
                assert 0 < sum(m["type"] == "auth-ok" for m in got) < 6 * RATE
        await asyncio.sleep(2 * 2 / RATE + 0.2)
        assert (await subscribe(c, "s", ent))["type"] == "q-init"
        c.close()

    asyncio.run(go())


def test_a_flood_before_auth_closes_the_socket(server, anon):
    """Pongs before `auth` count too: over the rate the socket gets RATE_LIMITED and is
    closed with 4001 (it has nothing to be served yet)."""
    erin = signup(anon)

    async def go():
        c = await WsClient.connect(server.url)
        for _ in range(6 * RATE):
            await c.send({"type": "pong"})
        await c.send({"type": "auth", "token": erin.access})
        code, reason = await c.closed_with()
        assert code == 4001 and "before auth" in (reason or "")
        errors = [m for m in c.inbox if m["type"] == "error"]
        assert [m["error"]["code"] for m in errors] == ["RATE_LIMITED"]
        assert not [m for m in c.inbox if m["type"] == "auth-ok"]

    asyncio.run(go())


# -- presence --------------------------------------------------------------------------


def test_presence_room_size_is_capped(server):
    """Entering a room of PRESENCE_MAX_PEERS gets RESOURCE_EXCEEDED with the message's
    id; a place frees when a peer leaves."""
    name = "full-" + uuid.uuid4().hex[:8]

    async def go():
        peers = [await WsClient.connect(server.url, ADMIN_TOKEN) for _ in range(MAX_PEERS + 1)]
        for i, c in enumerate(peers[:MAX_PEERS]):
            await c.send({"type": "presence-enter", "room": name, "data": {"i": i}})
            await c.expect("presence-change", room=name)
        late = peers[-1]
        await late.send({"type": "presence-enter", "room": name, "id": "e1", "data": {}})
        error = await late.expect("error")
        assert error["id"] == "e1" and error["error"]["code"] == "RESOURCE_EXCEEDED"
        assert f"{MAX_PEERS} peers" in error["error"]["message"]
        await late.send({"type": "presence-update", "room": name, "data": {}})
        assert (await late.expect("error"))["error"]["code"] == "NOT_FOUND"  # not let in

        await peers[0].send({"type": "presence-leave", "room": name})
        await peers[1].expect("presence-change", room=name, event="leave")
        await late.send({"type": "presence-enter", "room": name, "data": {"i": "late"}})
        snapshot = await late.expect("presence-change", room=name)
        assert sorted(str(p["data"]["i"]) for p in snapshot["peers"]) == ["1", "2", "late"]
        for c in peers:
            c.close()

    asyncio.run(go())


def test_each_change_sends_only_its_peer(server, anon):
    """In a full room an update reaches every member as the one peer's delta, the same
    bytes whatever the room's size; a member entering later gets the whole room once."""
    name = "delta-" + uuid.uuid4().hex[:8]
    users = [signup(anon) for _ in range(MAX_PEERS)]

    async def go():
        socks = [await WsClient.connect(server.url, u.access) for u in users]
        for i, c in enumerate(socks):
            await c.send({"type": "presence-enter", "room": name, "data": {"pad": "x" * 900}})
            snapshot = await c.expect("presence-change", room=name)
            assert len(snapshot["peers"]) == i + 1
        for c in socks:
            await c.quiet(0.3)
        await socks[0].send({"type": "presence-update", "room": name, "data": {"n": 1}})
        for c in socks:
            got = [m for m in await c.quiet(0.5) if m["type"] == "presence-change"]
            assert got == [
                {
                    "type": "presence-change",
                    "room": name,
                    "event": "update",
                    "peer": {"id": got[0]["peer"]["id"], "userId": users[0].id, "data": {"n": 1}},
                }
            ]
        for c in socks:
            c.close()

    asyncio.run(go())


def test_a_backed_up_member_still_ends_with_the_room_as_it_is(make_server, backend):
    """A member that does not read while peers join, update and leave has its deltas
    held and merged per peer (WS_BUFFER_SOFT); once it reads, applying them gives the
    room as GET /api/presence shows it."""
    server = make_server(backend, WS_BUFFER_SOFT="0", PRESENCE_RATE="1000")
    name = "slow-" + uuid.uuid4().hex[:8]
    pad = "y" * 2000

    async def go():
        slow = await asyncio.to_thread(RawWs, server.url)
        slow.send({"type": "auth", "token": ADMIN_TOKEN})
        assert (await asyncio.to_thread(slow.recv))["type"] == "auth-ok"
        slow.send({"type": "presence-enter", "room": name, "data": {"me": True}})
        state: dict = {}
        apply_presence(state, await asyncio.to_thread(slow.recv))

        peers = [await WsClient.connect(server.url, ADMIN_TOKEN) for _ in range(12)]
        for i, c in enumerate(peers):
            await c.send({"type": "presence-enter", "room": name, "data": {"i": i, "pad": pad}})
        for n in range(8):
            for i, c in enumerate(peers):
                data = {"i": i, "n": n, "pad": pad}
                await c.send({"type": "presence-update", "room": name, "data": data})
        for c in peers[::3]:
            await c.send({"type": "presence-leave", "room": name})
        for c in peers[1::3]:
            c.close()
        await asyncio.sleep(0.5)

        def drain() -> None:
            while True:
                try:
                    message = slow.recv(timeout=1.5)
                except TimeoutError:
                    return
                assert message is not None and message["type"] == "presence-change"
                apply_presence(state, message)

        await asyncio.to_thread(drain)
        view = (
            await asyncio.to_thread(
                requests.get,
                server.url + f"/api/presence/{name}",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=5,
            )
        ).json()
        assert {p["id"]: p["data"] for p in state.values()} == {
            p["id"]: p["data"] for p in view["peers"]
        }
        assert len(view["peers"]) == 1 + 12 - 4 - 4
        assert all(p["data"].get("n") == 7 for p in view["peers"] if "i" in p["data"])
        for c in peers:
            c.close()
        slow.close()

    asyncio.run(go())
