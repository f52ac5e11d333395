"""Idempotent mutations (issue 16): `Idempotency-Key` on /api/mutate and
`idempotencyKey` on WebSocket `mutate`, against the real server on both backends."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid

from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of
from tests.wsclient import WsClient


def entity() -> str:
    return "i" + uuid.uuid4().hex[:10]


def key() -> str:
    return str(uuid.uuid4())


def put(ent: str, id: str, **data) -> dict:
    return {"entity": ent, "id": id, "op": "set", "data": data}


def post(api: Api, ops: list[dict], idem: str | None = None):
    headers = {} if idem is None else {"Idempotency-Key": idem}
    return api.post("/api/mutate", json={"ops": ops}, headers=headers)


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def rows(api: Api, ent: str) -> list[dict]:
    return ok(api.get(f"/api/data/{ent}?limit=1000"))["data"]


def test_rest_retry_returns_the_first_outcome_and_applies_once(admin):
    ent, k = entity(), key()
    ops = [put(ent, "a", n=1), put(ent, "b", n=2)]
    first = post(admin, ops, k)
    assert "Idempotent-Replayed" not in first.headers
    body = ok(first)
    assert [r["status"] for r in body["results"]] == ["created", "created"]
    again = post(admin, ops, k)
    assert ok(again) == body  # the same tx, and "created", not "updated"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert all(r["updatedAt"] == r["createdAt"] for r in rows(admin, ent))  # written once
    # Nothing was committed in between: the next write takes the very next tx.
    assert ok(post(admin, [put(entity(), "x")]))["tx"] == body["tx"] + 1


def test_a_retried_delete_answers_deleted_not_404(admin):
    ent, k = entity(), key()
    ok(post(admin, [put(ent, "a", n=1)]))
    ops = [{"entity": ent, "id": "a", "op": "delete"}]
    body = ok(post(admin, ops, k))
    assert ok(post(admin, ops, k)) == body
    assert error_of(post(admin, ops))["code"] == "NOT_FOUND"  # without the key: applied


def test_same_key_other_ops_is_a_conflict(admin, server):
    ent, k = entity(), key()
    body = ok(post(admin, [put(ent, "a", n=1)], k))
    r = post(admin, [put(ent, "a", n=2)], k)
    assert r.status_code == 409
    error = error_of(r)
    assert error["code"] == "CONFLICT" and k in error["message"]
    assert rows(admin, ent)[0]["n"] == 1

    async def ws():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        await c.send(
            {"type": "mutate", "id": "m", "idempotencyKey": k, "ops": [put(ent, "a", n=3)]}
        )
        err = await c.expect("mutate-error", id="m")
        assert err["error"]["code"] == "CONFLICT" and err["error"]["status"] == 409
        # The original ops over the WebSocket are the same request: replayed.
        await c.send(
            {"type": "mutate", "id": "m2", "idempotencyKey": k, "ops": [put(ent, "a", n=1)]}
        )
        assert await c.expect("mutate-ok", id="m2") == {
            "type": "mutate-ok",
            "id": "m2",
            "tx": body["tx"],
            "replayed": True,
        }
        c.close()

    asyncio.run(ws())
    assert rows(admin, ent)[0]["n"] == 1


def test_ws_retry_after_reconnect_gets_the_same_tx(server, anon):
    user = signup(anon)
    ent, k = entity(), key()
    ops = [put(ent, "a", n=1)]

    async def go():
        c = await WsClient.connect(server.url, user.access)
        await c.send({"type": "mutate", "id": "m1", "idempotencyKey": k, "ops": ops})
        first = await c.expect("mutate-ok", id="m1")
        assert "replayed" not in first
        c.close()
        c = await WsClient.connect(server.url, user.access)  # the ack was "lost"
        await c.send({"type": "mutate", "id": "m1", "idempotencyKey": k, "ops": ops})
        again = await c.expect("mutate-ok", id="m1")
        assert again["tx"] == first["tx"] and again["replayed"] is True
        # Over REST with the same key and ops: the same outcome too.
        r = await asyncio.to_thread(post, user.api, ops, k)
        assert ok(r)["tx"] == first["tx"] and r.headers["Idempotent-Replayed"] == "true"
        # Retries sent back to back, none awaited: one commit, every answer its tx.
        k2 = key()
        more = [put(ent, "b", n=2)]
        for i in range(5):
            await c.send({"type": "mutate", "id": f"r{i}", "idempotencyKey": k2, "ops": more})
        txs = {(await c.expect("mutate-ok", id=f"r{i}"))["tx"] for i in range(5)}
        assert len(txs) == 1
        c.close()

    asyncio.run(go())
    assert [(r["id"], r["n"]) for r in rows(user.api, ent)] == [("a", 1), ("b", 2)]


def test_concurrent_retries_create_one_row(admin, server):
    """Retries racing each other (in one group commit or several): one commit, and
    every answer carries its tx."""
    for _ in range(3):
        ent, k = entity(), key()
        ops = [{"entity": ent, "id": "only", "op": "set", "data": {"n": 1}}]
        apis = [Api(server.url, ADMIN_TOKEN) for _ in range(12)]
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(post, apis, [ops] * 12, [k] * 12))
        bodies = [ok(r) for r in answers]
        assert len({b["tx"] for b in bodies}) == 1
        assert all(
            b["results"] == [{"op": "set", "id": "only", "status": "created"}] for b in bodies
        )
        assert sum("Idempotent-Replayed" not in r.headers for r in answers) == 1
        assert len(rows(admin, ent)) == 1
        assert ok(post(admin, [put(entity(), "x")]))["tx"] == bodies[0]["tx"] + 1


def test_keys_are_per_user(server, anon, admin):
    alice, bob = signup(anon), signup(anon)
    ent, k = entity(), "shared-key-" + uuid.uuid4().hex[:6]
    ops = [put(ent, "a", n=1)]
    ta = ok(post(alice.api, ops, k))["tx"]
    tb = ok(post(bob.api, [put(ent, "b", n=1)], k))["tx"]  # other ops: no conflict
    tc = ok(post(admin, [put(ent, "c", n=1)], k))["tx"]
    assert len({ta, tb, tc}) == 3
    assert [r["id"] for r in rows(alice.api, ent)] == ["a"]
    assert [r["id"] for r in rows(bob.api, ent)] == ["b"]
    assert ok(post(alice.api, ops, k))["tx"] == ta


def test_a_failed_mutation_is_not_remembered(admin):
    """It applied nothing, so its retry runs again (and may now succeed)."""
    ent, k = entity(), key()
    ops = [{"entity": ent, "id": "a", "op": "merge", "data": {"n": 2}}]
    assert error_of(post(admin, ops, k))["code"] == "NOT_FOUND"
    ok(post(admin, [put(ent, "a", n=1)]))
    body = ok(post(admin, ops, k))
    assert body["results"][0]["status"] == "updated"
    assert ok(post(admin, ops, k)) == body


def test_bad_keys_are_refused(admin, server):
    ent = entity()
    for bad in ("", "a b", "k" * 129, "clé", 'q"uote'):
        r = post(admin, [put(ent, "a")], bad)
        assert r.status_code == 400, bad
        error = error_of(r)
        assert error["code"] == "INVALID_ARGUMENT" and "Idempotency-Key" in error["message"]
    ok(post(admin, [put(ent, "a")], "k" * 128))

    async def ws():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        for i, bad in enumerate(("", 42, True, {"k": 1}, "a b")):
            await c.send(
                {"type": "mutate", "id": f"b{i}", "idempotencyKey": bad, "ops": [put(ent, "z")]}
            )
            err = await c.expect("mutate-error", id=f"b{i}")
            assert err["error"]["code"] == "INVALID_ARGUMENT"
            assert "idempotencyKey" in err["error"]["message"]
        c.close()

    asyncio.run(ws())
    assert [r["id"] for r in rows(admin, ent)] == ["a"]


def test_keys_are_forgotten_after_the_window(make_server, backend):
    server = make_server(backend, IDEMPOTENCY_WINDOW="1", SWEEP_INTERVAL="0.2")
    admin = Api(server.url, ADMIN_TOKEN)
    ent, k = entity(), key()
    first = ok(post(admin, [put(ent, "a", n=1)], k))["tx"]
    assert post(admin, [put(ent, "a", n=2)], k).status_code == 409  # remembered
    deadline = time.monotonic() + 10
    while True:
        r = post(admin, [put(ent, "a", n=2)], k)
        if r.status_code == 200:
            break
        assert r.status_code == 409 and time.monotonic() < deadline, r.text
        time.sleep(0.2)
    assert r.json()["tx"] > first and rows(admin, ent)[0]["n"] == 2
