"""The WebSocket protocol against the real server, on both backends."""

from __future__ import annotations

import asyncio
import uuid

import requests

from actors.fanout import CHUNK
from tests.handlers.accounts import PASSWORD, signin, signup
from tests.serverproc import ADMIN_TOKEN, Api
from tests.wsclient import RawWs, SseClient, WsClient, apply_presence


def run(coro):
    return asyncio.run(coro)


def entity() -> str:
    return "t" + uuid.uuid4().hex[:10]


def set_op(ent: str, id: str, **data) -> dict:
    return {"entity": ent, "id": id, "op": "set", "data": data}


async def mutate(c: WsClient, ops: list[dict]) -> int:
    mid = uuid.uuid4().hex
    await c.send({"type": "mutate", "id": mid, "ops": ops})
    return (await c.expect("mutate-ok", id=mid))["tx"]


def test_auth_first_and_errors(server):
    async def go():
        c = await WsClient.connect(server.url)
        await c.send({"type": "subscribe", "id": "s", "query": {"x": {}}})
        err = await c.expect("error")
        assert err["error"]["code"] == "UNAUTHENTICATED" and err["error"]["status"] == 401
        assert (await c.closed_with())[0] == 4001

        c = await WsClient.connect(server.url)
        await c.send({"type": "auth", "token": "not-a-token"})
        assert "message" in await c.expect("auth-error")
        assert (await c.closed_with())[0] == 4001

        c = await WsClient.connect(server.url)
        await c.send("{not json")
        assert (await c.expect("error"))["error"]["code"] == "UNAUTHENTICATED"
        assert (await c.closed_with())[0] == 4001

        c = await WsClient.connect(server.url, ADMIN_TOKEN)  # admin token accepted
        for bad in ("{oops", "[1]", {"no": "type"}, {"type": "nope"}):
            await c.send(bad)
            err = (await c.expect("error"))["error"]
            assert err["code"] == "INVALID_ARGUMENT" and err["status"] == 400
        await c.send({"type": "subscribe", "id": "q1", "query": {"BAD NAME": {}}})
        assert (await c.expect("error", id="q1"))["error"]["code"] == "INVALID_ARGUMENT"
        await c.send({"type": "subscribe", "query": {"a": {}}})
        await c.expect("error")
        await c.send({"type": "unsubscribe", "id": "missing"})
        assert (await c.expect("error", id="missing"))["error"]["code"] == "NOT_FOUND"
        await c.ws.write_message(b"\x00binary", binary=True)
        await c.expect("error")
        await c.send({"type": "mutate", "id": "m1", "ops": "nope"})
        err = await c.expect("mutate-error", id="m1")
        assert err["error"]["code"] == "INVALID_ARGUMENT" and err["error"]["message"]
        await c.send(
            {
                "type": "mutate",
                "id": "m2",
                "ops": [{"entity": "e", "id": "x", "op": "merge", "data": {}}],
            }
        )
        assert (await c.expect("mutate-error", id="m2"))["error"]["code"] == "NOT_FOUND"
        await c.send({"type": "pong"})
        await c.send({"type": "subscribe", "id": "ok", "query": {entity(): {}}})
        await c.expect("q-init", id="ok")
        await c.send({"type": "subscribe", "id": "ok", "query": {entity(): {}}})
        await c.expect("error", id="ok")  # the id is taken
        await c.send({"type": "unsubscribe", "id": "ok"})
        await c.expect("unsubscribe-ok", id="ok")
        assert not c.closed
        c.close()

    run(go())


def test_message_limits(make_server, backend):
    server = make_server(backend, WS_MAX_MESSAGE_BYTES="1024", WS_MESSAGE_RATE="5")

    async def go():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        await c.send({"type": "nope", "pad": "x" * 2000})
        assert (await c.expect("error"))["error"]["code"] == "PAYLOAD_TOO_LARGE"
        for _ in range(30):
            await c.send({"type": "nope"})
        codes = {m["error"]["code"] for m in await c.quiet(0.5)}
        assert "RATE_LIMITED" in codes
        await asyncio.sleep(1)
        await c.send({"type": "nope"})
        assert (await c.expect("error"))["error"]["code"] == "INVALID_ARGUMENT"
        c.close()

    run(go())


def test_diffs_create_update_delete_enter_leave(server):
    ent = entity()

    async def go():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        await c.send({"type": "subscribe", "id": "s", "query": {ent: {"$where": {"done": False}}}})
        init = await c.expect("q-init", id="s")
        assert init["data"] == {ent: []} and isinstance(init["tx"], int)

        tx = await mutate(c, [set_op(ent, "a", title="A", done=False)])
        d = await c.expect("q-diff", id="s")
        assert d["tx"] == tx and d["removed"] == [] and d["updated"] == []
        assert d["added"][0]["id"] == "a" and d["added"][0]["title"] == "A"

        tx = await mutate(
            c, [{"entity": ent, "id": "a", "op": "merge", "data": {"title": "B", "x": 1}}]
        )
        d = await c.expect("q-diff", id="s")
        assert d["tx"] == tx and d["added"] == [] and d["removed"] == []
        assert d["updated"][0]["id"] == "a" and d["updated"][0]["title"] == "B"
        assert d["updated"][0]["x"] == 1 and "done" not in d["updated"][0]

        tx = await mutate(c, [{"entity": ent, "id": "a", "op": "merge", "data": {"x": None}}])
        d = await c.expect("q-diff", id="s")
        assert d["updated"][0]["x"] is None  # a removed field is null

        tx = await mutate(c, [{"entity": ent, "id": "a", "op": "merge", "data": {"done": True}}])
        d = await c.expect("q-diff", id="s")  # updated out of $where
        assert (d["tx"], d["removed"], d["added"]) == (tx, ["a"], [])

        tx = await mutate(c, [{"entity": ent, "id": "a", "op": "merge", "data": {"done": False}}])
        d = await c.expect("q-diff", id="s")  # updated into $where: full row
        assert d["tx"] == tx and d["added"][0]["title"] == "B"

        tx = await mutate(c, [{"entity": ent, "id": "a", "op": "delete"}])
        d = await c.expect("q-diff", id="s")
        assert (d["tx"], d["removed"]) == (tx, ["a"])

        await mutate(c, [set_op(entity(), "z", v=1)])  # another entity: no diff
        assert [m for m in await c.quiet(0.3) if m["type"] == "q-diff"] == []
        c.close()

    run(go())


def test_limit_window(server):
    ent = entity()

    async def go():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        await mutate(c, [set_op(ent, f"r{i}", n=i) for i in (1, 3, 5, 7)])
        q = {ent: {"$order": {"n": "asc"}, "$limit": 2, "$fields": ["n"]}}
        await c.send({"type": "subscribe", "id": "w", "query": q})
        init = await c.expect("q-init", id="w")
        assert [r["n"] for r in init["data"][ent]] == [1, 3]
        assert set(init["data"][ent][0]) == {"id", "n"}

        tx = await mutate(c, [set_op(ent, "r0", n=0)])  # enters, pushes r3 out
        d = await c.expect("q-diff", id="w")
        assert (d["tx"], [r["id"] for r in d["added"]], d["removed"]) == (tx, ["r0"], ["r3"])

        await mutate(c, [set_op(ent, "r9", n=9)])  # beyond the window: nothing
        tx = await mutate(c, [{"entity": ent, "id": "r0", "op": "delete"}])
        d = await c.expect("q-diff", id="w")  # the next row refills the window
        assert d["tx"] >= tx and d["removed"] == ["r0"]
        assert [r["id"] for r in d["added"]] == ["r3"]
        assert [m for m in await c.quiet(0.3) if m["type"] == "q-diff"] == []

        tx = await mutate(c, [{"entity": ent, "id": "r7", "op": "merge", "data": {"n": -1}}])
        d = await c.expect("q-diff", id="w")  # moves into the window from beyond it
        assert d["tx"] == tx and [r["id"] for r in d["added"]] == ["r7"]
        assert d["removed"] == ["r3"]
        c.close()

    run(go())


def test_links_and_several_entities(server):
    lists, todos = entity() + "s", entity() + "s"
    link_field = lists[:-1] + "Id"  # the naming convention: todos.<list>Id -> lists

    async def go():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        await mutate(c, [set_op(lists, "l1", name="L")])
        q = {lists: {todos: {}}, todos: {}}
        await c.send({"type": "subscribe", "id": "n", "query": q})
        init = await c.expect("q-init", id="n")
        assert init["data"][lists][0]["id"] == "l1" and todos in init["data"]
        tx = await mutate(c, [set_op(todos, "t1", **{link_field: "l1"})])
        diffs = [await c.expect("q-diff", id="n"), await c.expect("q-diff", id="n")]
        by = {d["entity"]: d for d in diffs}
        assert by[todos]["added"][0]["id"] == "t1" and by[todos]["tx"] == tx
        assert by[lists]["updated"][0]["id"] == "l1" and by[lists]["tx"] >= tx
        c.close()

    run(go())


def test_two_users_isolated_and_shared(server, anon):
    ent = entity()
    alice, bob = signup(anon), signup(anon)

    async def go():
        a1 = await WsClient.connect(server.url, alice.access)
        a2 = await WsClient.connect(server.url, alice.access)
        b = await WsClient.connect(server.url, bob.access)
        await mutate(a1, [set_op(ent, "a0", who="alice")])
        for c in (a1, a2, b):
            await c.send({"type": "subscribe", "id": "mine", "query": {ent: {}}})
        assert [r["id"] for r in (await a1.expect("q-init"))["data"][ent]] == ["a0"]
        assert [r["id"] for r in (await a2.expect("q-init"))["data"][ent]] == ["a0"]
        assert (await b.expect("q-init"))["data"][ent] == []

        tx = await mutate(b, [set_op(ent, "b1", who="bob")])
        assert (await b.expect("q-diff"))["added"][0]["id"] == "b1"
        tx_a = await mutate(a1, [set_op(ent, "a1", who="alice")])
        for c in (a1, a2):
            d = await c.expect("q-diff")
            assert d["tx"] == tx_a and [r["id"] for r in d["added"]] == ["a1"]
        others = [m for m in await b.quiet(0.3) if m["type"] == "q-diff"]
        assert others == [] and tx < tx_a
        for c in (a1, a2, b):
            c.close()

    run(go())


def test_health_counts_connections(server, anon):
    async def go():
        before = anon.get("/api/admin/health").json()["connections"]["websocket"]
        cs = [await WsClient.connect(server.url, ADMIN_TOKEN) for _ in range(3)]
        assert anon.get("/api/admin/health").json()["connections"]["websocket"] == before + 3
        for c in cs:
            c.close()
        await asyncio.sleep(0.3)
        assert anon.get("/api/admin/health").json()["connections"]["websocket"] == before

    run(go())


def test_revoked_sessions_close_their_sockets(server, anon):
    """Sign-out, a password change (from another session) and a reused refresh token
    each end a session; its sockets are closed with 4001 within 5 s."""
    out, changed, reused = signup(anon), signup(anon), signup(anon)
    other = signin(anon, changed.email)

    def sign_out() -> None:
        assert out.api.post("/api/auth/signout").status_code == 204

    def change_password() -> None:
        body = {"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}
        r = anon.with_token(other["accessToken"]).post("/api/auth/password", json=body)
        assert r.status_code == 204

    def reuse_refresh() -> None:
        for expected in (200, 401):  # the second use of the same token is a reuse
            r = anon.post("/api/auth/refresh", json={"refreshToken": reused.refresh})
            assert r.status_code == expected

    async def go():
        sockets = []
        for user in (out, changed, reused):
            c = await WsClient.connect(server.url, user.access)
            await c.send({"type": "subscribe", "id": "s", "query": {entity(): {}}})
            await c.expect("q-init")
            sockets.append(c)
        bystander = await WsClient.connect(server.url, other["accessToken"])
        for revoke in (sign_out, change_password, reuse_refresh):
            await asyncio.to_thread(revoke)
        # The bound: closed within 5 s of the revocation.
        closed = await asyncio.gather(*(c.closed_with(within=5) for c in sockets))
        assert [code for code, _ in closed] == [4001] * 3
        assert all("revoked" in reason.lower() for _, reason in closed)
        # The session that changed the password goes on.
        await bystander.send({"type": "subscribe", "id": "s", "query": {entity(): {}}})
        await bystander.expect("q-init", id="s")
        bystander.close()

    run(go())


def test_heartbeat_timeout(make_server, backend):
    server = make_server(backend, WS_PING_INTERVAL="0.3")

    async def answer(c: WsClient, times: int) -> None:
        for _ in range(times):
            await c.expect("ping", within=3)
            await c.send({"type": "pong"})

    async def go():
        good = await WsClient.connect(server.url, ADMIN_TOKEN)
        bad = await WsClient.connect(server.url, ADMIN_TOKEN)
        silent = await WsClient.connect(server.url)  # never authenticates
        closed = await asyncio.gather(
            answer(good, 6), bad.closed_with(within=5), silent.closed_with(within=5)
        )
        assert closed[1][0] == 4002  # pinged, never answered
        assert closed[2][0] == 4001
        assert not good.closed
        good.close()

    run(go())


def test_slow_consumer_coalesced(make_server, backend):
    server = make_server(backend, WS_BUFFER_SOFT="1024", WS_BUFFER_HARD="50000000")
    ent = entity()
    raw = RawWs(server.url)
    raw.send({"type": "auth", "token": ADMIN_TOKEN})
    assert raw.recv()["type"] == "auth-ok"
    raw.send({"type": "subscribe", "id": "s", "query": {ent: {"$limit": 1000}}})
    assert raw.recv()["type"] == "q-init"
    api = requests.Session()
    n = 300
    last = 0
    for i in range(n):  # the client reads nothing meanwhile
        r = api.post(
            server.url + "/api/mutate",
            json={"ops": [set_op(ent, f"r{i % 50}", pad=f"{i:05d}" * 10000, i=i)]},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        last = r.json()["tx"]
    rows: dict[str, dict] = {}
    diffs = 0
    while True:
        m = raw.recv()
        assert m is not None and m["type"] == "q-diff"
        diffs += 1
        for row in m["added"]:
            rows[row["id"]] = row
        for upd in m["updated"]:
            rows[upd["id"]].update(upd)
        if m["tx"] == last:
            break
    assert diffs < n  # coalesced
    assert len(rows) == 50 and all(rows[f"r{i % 50}"]["i"] == i for i in range(n - 50, n))
    raw.close()


def test_slow_consumer_closed_past_hard_limit(make_server, backend):
    server = make_server(backend, WS_BUFFER_SOFT="1024", WS_BUFFER_HARD="200000")
    raw = RawWs(server.url)
    raw.send({"type": "auth", "token": ADMIN_TOKEN})
    assert raw.recv()["type"] == "auth-ok"
    ent = entity()
    big = {"ops": [set_op(ent, f"r{i}", pad="y" * 50000) for i in range(20)]}
    r = requests.post(
        server.url + "/api/mutate", json=big, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert r.status_code == 200
    for i in range(40):  # q-inits are never held back: the unsent bytes pile up
        raw.send({"type": "subscribe", "id": f"s{i}", "query": {ent: {"$limit": 20}}})
    while raw.recv(timeout=10) is not None:
        pass
    assert raw.close_code == 4008
    raw.close()


def test_shared_query_order_q_init_then_diffs_in_tx_order(server):
    """Frames bypass the connection's mailbox: each member still gets its q-init
    first, then every later diff once, in tx order, while writes keep coming."""
    ent = entity()
    api = requests.Session()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def write(i: int) -> int:
        r = api.post(
            server.url + "/api/mutate",
            json={"ops": [set_op(ent, f"r{i}", i=i)]},
            headers=headers,
            timeout=10,
        )
        return r.json()["tx"]

    async def go():
        clients = [await WsClient.connect(server.url, ADMIN_TOKEN) for _ in range(4)]
        writer = asyncio.ensure_future(
            asyncio.gather(*(asyncio.to_thread(write, i) for i in range(40)))
        )
        for n, c in enumerate(clients):  # joining while the writes land
            await c.send({"type": "subscribe", "id": f"s{n}", "query": {ent: {}}})
            await asyncio.sleep(0.01)
        last = max(await writer)
        for n, c in enumerate(clients):
            init = await c.expect("q-init", id=f"s{n}")
            rows = {r["id"] for r in init["data"][ent]}
            seen = init["tx"]
            while seen < last:
                d = await c.expect("q-diff", id=f"s{n}")
                assert d["tx"] > seen  # after the q-init's snapshot, in order, once
                seen = d["tx"]
                rows |= {r["id"] for r in d["added"]}
            assert rows == {f"r{i}" for i in range(40)}
            assert [m for m in c.inbox if m["type"] == "q-init"] == []
            c.close()

    run(go())


def test_staggered_pings_close_every_silent_socket(make_server, backend):
    server = make_server(backend, WS_PING_INTERVAL="0.5")

    async def answer(c: WsClient, times: int) -> None:
        for _ in range(times):
            await c.expect("ping", within=3)
            await c.send({"type": "pong"})

    async def go():
        good = [await WsClient.connect(server.url, ADMIN_TOKEN) for _ in range(8)]
        bad = [await WsClient.connect(server.url, ADMIN_TOKEN) for _ in range(8)]
        results = await asyncio.gather(
            *(answer(c, 4) for c in good), *(c.closed_with(within=6) for c in bad)
        )
        assert [code for code, _ in results[len(good) :]] == [4002] * len(bad)
        assert not any(c.closed for c in good)
        for c in good:
            c.close()

    run(go())


def test_fanout_over_several_turns_keeps_every_members_order(make_server, backend):
    """With FANOUT_TURN=0 a fan-out yields the loop every CHUNK members, and diffs
    queue behind it: every member still gets every diff once, in tx order, and a
    room's members all end with its final peer list."""
    server = make_server(backend, FANOUT_TURN="0")
    ent = entity()
    members = 4 * CHUNK + 44

    async def go():
        clients = await asyncio.gather(
            *(WsClient.connect(server.url, ADMIN_TOKEN) for _ in range(members))
        )
        await asyncio.gather(
            *(c.send({"type": "subscribe", "id": "s", "query": {ent: {}}}) for c in clients)
        )
        inits = await asyncio.gather(*(c.expect("q-init", id="s") for c in clients))
        writer = clients[0]
        for i in range(12):  # sent back to back: diffs are queued behind a fan-out
            await writer.send({"type": "mutate", "id": f"m{i}", "ops": [set_op(ent, f"r{i}")]})
        txs = [(await writer.expect("mutate-ok", id=f"m{i}"))["tx"] for i in range(12)]
        for c, init in zip(clients, inits, strict=True):
            seen, rows = init["tx"], set()
            while seen < max(txs):
                d = await c.expect("q-diff", id="s")
                assert d["tx"] > seen
                seen = d["tx"]
                rows |= {r["id"] for r in d["added"]}
            assert rows == {f"r{i}" for i in range(12)}

        room = "fan-" + ent
        for n, c in enumerate(clients):
            await c.send({"type": "presence-enter", "room": room, "data": {"n": n}})
        await clients[0].send({"type": "presence-update", "room": room, "data": {"n": "last"}})
        for c in clients:  # a snapshot on entering, then one peer's change at a time
            peers: dict = {}
            while len(peers) < members or {"n": "last"} not in [p["data"] for p in peers.values()]:
                apply_presence(peers, await c.expect("presence-change", room=room))
        for c in clients:
            c.close()

    run(go())


def test_token_expiry_closes_unless_a_fresh_auth_came(make_server, backend):
    """Sockets live past their token only by sending `auth` with a fresh one: the one
    that did stays open and served; the one that did not is closed with 4001, and so is
    an SSE stream on the old token (with `event: close`). Takes the shortest TTL, 30 s."""
    server = make_server(backend, ACCESS_TOKEN_TTL="30")
    user = signup(Api(server.url))
    ent = entity()

    async def go():
        fresh = await WsClient.connect(server.url, user.access)
        stale = await WsClient.connect(server.url, user.access)
        sse = await asyncio.to_thread(SseClient, server.url, {ent: {}}, user.access)
        assert (await asyncio.to_thread(sse.next_event))[0] == "q-init"
        await asyncio.sleep(5)  # tokens carry whole seconds: the new one ends later
        refreshed = await asyncio.to_thread(
            requests.post,
            server.url + "/api/auth/refresh",
            json={"refreshToken": user.refresh},
            timeout=10,
        )
        await fresh.send({"type": "auth", "token": refreshed.json()["accessToken"]})
        assert (await fresh.expect("auth-ok"))["userId"] == user.id

        code, reason = await stale.closed_with(within=40)
        assert code == 4001 and "expired" in reason.lower()
        event, _, data = await asyncio.to_thread(sse.next_event)
        assert event == "close" and data["code"] == 4001
        sse.close()

        assert not fresh.closed
        await fresh.send({"type": "subscribe", "id": "s", "query": {ent: {}}})
        await fresh.expect("q-init", id="s")
        await mutate(fresh, [set_op(ent, "after-expiry")])
        diff = await fresh.expect("q-diff", id="s")
        assert [r["id"] for r in diff["added"]] == ["after-expiry"]
        fresh.close()

    run(go())
