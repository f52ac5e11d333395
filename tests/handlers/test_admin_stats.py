"""GET /api/admin/stats over real HTTP on both backends: who may ask, the seed's shape,
and numbers that move as queries, mutations, uploads, sign-ups and subscriptions
happen."""

from __future__ import annotations

import asyncio
import uuid

from store.stats import ActiveToday, Meter, utc_midnight_ms
from tests.handlers.accounts import signup
from tests.serverproc import error_of
from tests.wsclient import WsClient


def stats(admin) -> dict:
    response = admin.get("/api/admin/stats")
    assert response.status_code == 200, response.text
    return response.json()


def test_admin_token_only(server, admin, anon):
    error = error_of(anon.get("/api/admin/stats"))
    assert (error["code"], error["status"]) == ("UNAUTHENTICATED", 401)
    user = signup(anon)
    error = error_of(user.api.get("/api/admin/stats"))
    assert (error["code"], error["status"]) == ("PERMISSION_DENIED", 403)
    assert admin.get("/api/admin/stats").headers["X-RateLimit-Limit"]


def test_shape_is_the_seeds(admin):
    body = stats(admin)
    # The seed's fields, and the answering node with every live node's own figures.
    assert set(body) == {"queries", "mutations", "subscriptions", "storage", "users"} | {
        "node",
        "nodes",
    }
    assert body["node"] in {n["node"] for n in body["nodes"]}
    for kind in ("queries", "mutations"):
        assert set(body[kind]) == {"total", "perSecond", "avgLatencyMs"}
        assert isinstance(body[kind]["total"], int)
    assert set(body["subscriptions"]) == {"active"}
    assert set(body["storage"]) == {"totalFiles", "totalBytes"}
    assert set(body["users"]) == {"total", "activeToday"}


def test_queries_and_mutations_are_counted(admin):
    entity = "st_" + uuid.uuid4().hex[:8]
    before = stats(admin)
    for i in range(3):
        assert admin.post(f"/api/data/{entity}", json={"id": f"r{i}", "n": i}).status_code == 201
    assert admin.patch(f"/api/data/{entity}/r0", json={"n": 9}).status_code == 200
    ops = [{"entity": entity, "id": "r9", "op": "set", "data": {"n": 1}}]
    assert admin.post("/api/mutate", json={"ops": ops}).status_code == 200
    assert admin.delete(f"/api/data/{entity}/r1").status_code == 204
    assert admin.get(f"/api/data/{entity}").status_code == 200
    assert admin.get(f"/api/data/{entity}/r0").status_code == 200
    assert admin.post("/api/query", json={entity: {}}).status_code == 200
    # A failed mutation commits nothing and is not counted.
    assert admin.delete(f"/api/data/{entity}/missing").status_code == 404
    after = stats(admin)
    assert after["mutations"]["total"] - before["mutations"]["total"] == 6
    assert after["queries"]["total"] - before["queries"]["total"] == 3
    for kind in ("queries", "mutations"):
        assert after[kind]["perSecond"] > 0
        assert after[kind]["avgLatencyMs"] > 0


def test_uploads_move_storage_totals(admin):
    before = stats(admin)["storage"]
    path = f"st-{uuid.uuid4().hex[:8]}/a.txt"
    response = admin.post(
        "/api/storage/upload",
        files={"file": ("a.txt", b"hello stats", "text/plain")},
        data={"path": path},
    )
    assert response.status_code == 201, response.text
    after = stats(admin)["storage"]
    assert after["totalFiles"] == before["totalFiles"] + 1
    assert after["totalBytes"] == before["totalBytes"] + len(b"hello stats")
    assert admin.delete(f"/api/storage/{path}").status_code == 204
    assert stats(admin)["storage"] == before


def test_users_total_and_active_today(admin, anon):
    before = stats(admin)["users"]
    signed_up = signup(anon)
    assert signed_up.api.get("/api/auth/me").status_code == 200
    after = stats(admin)["users"]
    assert after["total"] == before["total"] + 1
    assert after["activeToday"] == before["activeToday"] + 1
    # The same user again is still one active user.
    assert signed_up.api.get("/api/auth/me").status_code == 200
    assert stats(admin)["users"]["activeToday"] == after["activeToday"]


def test_active_subscriptions(server, admin):
    async def run() -> None:
        before = stats(admin)["subscriptions"]["active"]
        client = await WsClient.connect(server.url, admin.token)
        try:
            for sub in ("s1", "s2"):
                await client.send({"type": "subscribe", "id": sub, "query": {"st_subs": {}}})
                await client.expect("q-init", id=sub)
            assert stats(admin)["subscriptions"]["active"] == before + 2
            await client.send({"type": "unsubscribe", "id": "s1"})
            await client.expect("unsubscribe-ok", id="s1")
            assert stats(admin)["subscriptions"]["active"] == before + 1
        finally:
            client.close()
        for _ in range(100):
            if stats(admin)["subscriptions"]["active"] == before:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the closed socket's subscription is still counted")

    asyncio.run(run())


def test_meter_rates_cover_the_last_minute():
    now = [1000.0]
    meter = Meter(clock=lambda: now[0])
    for latency in (0.001, 0.003):
        meter.record(latency)
    assert meter.snapshot() == {"total": 2, "perSecond": round(2 / 60, 3), "avgLatencyMs": 2.0}
    now[0] += 30
    meter.record(0.005)
    assert meter.snapshot()["perSecond"] == round(3 / 60, 3)
    now[0] += 45  # the first two fall out of the window; the total keeps them
    assert meter.snapshot() == {"total": 3, "perSecond": round(1 / 60, 3), "avgLatencyMs": 5.0}
    now[0] += 60
    assert meter.snapshot() == {"total": 3, "perSecond": 0.0, "avgLatencyMs": 0.0}


def test_active_today_restarts_at_utc_midnight():
    midnight = 1_800_000_000 - 1_800_000_000 % 86_400
    now = [midnight + 3600.0]
    today = ActiveToday(clock=lambda: now[0])
    today.seed(utc_midnight_ms(now[0]), {"u1", "u2"})
    today.seen("u2")
    today.seen("u3")
    assert today.count() == 3
    now[0] = midnight + 86_400 + 1
    assert today.count() == 0
    today.seed(midnight * 1000, {"stale"})  # a seed for yesterday adds nothing
    today.seen("u1")
    assert today.count() == 1
