"""The admin endpoints behind the dashboard, over real HTTP and WebSockets on both
backends: user search, lock/unlock, MFA reset, sessions and their revocation (sockets
close), /api/admin/pulse, /api/admin/rooms and /api/admin/app."""

from __future__ import annotations

import asyncio
import time
import uuid

import pyotp

from tests.handlers.accounts import PASSWORD, signin, signup
from tests.serverproc import Api, error_of
from tests.wsclient import WsClient


def _enable_mfa(api: Api) -> None:
    secret = api.post("/api/auth/mfa/enroll", json={"password": PASSWORD}).json()["secret"]
    code = pyotp.TOTP(secret).now()
    r = api.post("/api/auth/mfa/enable", json={"code": code, "password": PASSWORD})
    assert r.status_code == 200, r.text


def test_search_finds_by_email_part_and_id(admin, anon):
    tag = uuid.uuid4().hex[:10]
    one = signup(anon, f"Find_{tag}@example.com")
    signup(anon, f"other_{tag}@example.com")
    r = admin.get("/api/admin/users", params={"search": f"FIND_{tag}"})
    assert r.status_code == 200
    body = r.json()
    assert [u["id"] for u in body["users"]] == [one.id] and body["total"] == 1
    assert body["users"][0]["locked"] is False
    assert [
        u["id"] for u in admin.get("/api/admin/users", params={"search": one.id}).json()["users"]
    ] == [one.id]
    assert len(admin.get("/api/admin/users", params={"search": tag}).json()["users"]) == 2
    # LIKE's wildcards are searched for, not matched with
    assert admin.get("/api/admin/users", params={"search": "%"}).json()["total"] == 0
    assert error_of(admin.get("/api/admin/users", params={"search": "x" * 300}))["code"] == (
        "INVALID_ARGUMENT"
    )


def test_get_user_and_unknown_is_404(admin, anon):
    account = signup(anon)
    r = admin.get(f"/api/admin/users/{account.id}")
    assert r.status_code == 200
    body = r.json()
    assert body["email"] == account.email and body["locked"] is False
    assert body["lockedAt"] is None and body["lockedUntil"] is None
    assert error_of(admin.get("/api/admin/users/usr_nobody"))["code"] == "NOT_FOUND"
    assert (
        error_of(account.api.get(f"/api/admin/users/{account.id}"))["code"] == "PERMISSION_DENIED"
    )
    assert error_of(anon.get(f"/api/admin/users/{account.id}"))["code"] == "UNAUTHENTICATED"


def test_lock_refuses_sign_in_ends_sessions_and_unlock_restores(admin, anon, server):
    account = signup(anon)

    async def go() -> None:
        ws = await WsClient.connect(server.url, account.access)
        r = admin.patch(f"/api/admin/users/{account.id}", json={"locked": True})
        assert r.status_code == 200 and r.json()["locked"] is True and r.json()["lockedAt"]
        code, _ = await ws.closed_with()
        assert code == 4001

    asyncio.run(go())
    refused = anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD})
    error = error_of(refused)
    assert error["code"] == "PERMISSION_DENIED" and "locked" in error["message"]
    # a wrong password is still just wrong: the lock is told only to the right one
    wrong = anon.post("/api/auth/signin", json={"email": account.email, "password": "nope-nope-1"})
    assert error_of(wrong)["code"] == "INVALID_CREDENTIALS"
    assert error_of(account.api.get("/api/auth/me"))["code"] == "UNAUTHENTICATED"
    gone = anon.post("/api/auth/refresh", json={"refreshToken": account.refresh})
    assert error_of(gone)["code"] == "UNAUTHENTICATED"
    assert admin.get("/api/admin/users", params={"search": account.id}).json()["users"][0]["locked"]

    r = admin.patch(f"/api/admin/users/{account.id}", json={"locked": False})
    assert r.status_code == 200 and r.json()["locked"] is False
    assert "accessToken" in signin(anon, account.email)


def test_unlock_clears_a_failed_sign_in_lockout(make_server, backend):
    server = make_server(backend, LOCKOUT_THRESHOLD="2")
    anon, admin = Api(server.url), Api(server.url, "test-admin-token-" + "x" * 32)
    account = signup(anon)
    for _ in range(2):
        anon.post("/api/auth/signin", json={"email": account.email, "password": "wrong-pass-1"})
    locked = anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD})
    assert error_of(locked)["code"] == "ACCOUNT_LOCKED"
    assert admin.get(f"/api/admin/users/{account.id}").json()["lockedUntil"] is not None
    assert admin.patch(f"/api/admin/users/{account.id}", json={"locked": False}).status_code == 200
    assert admin.get(f"/api/admin/users/{account.id}").json()["lockedUntil"] is None
    assert "accessToken" in signin(anon, account.email)


def test_lock_bad_input(admin, anon):
    account = signup(anon)
    bad = admin.patch(f"/api/admin/users/{account.id}", json={"locked": "yes"})
    assert error_of(bad)["code"] == "INVALID_ARGUMENT"
    assert error_of(admin.patch("/api/admin/users/usr_nobody", json={"locked": True}))["code"] == (
        "NOT_FOUND"
    )


def test_reset_mfa_lets_the_password_alone_sign_in(admin, anon):
    account = signup(anon)
    _enable_mfa(account.api)
    assert signin(anon, account.email)["mfaRequired"] is True
    r = admin.delete(f"/api/admin/users/{account.id}/mfa")
    assert r.status_code == 200 and r.json()["mfaEnabled"] is False
    assert "accessToken" in signin(anon, account.email)
    assert error_of(admin.delete("/api/admin/users/usr_nobody/mfa"))["code"] == "NOT_FOUND"


def test_sessions_listed_and_revoked_one_and_all(admin, anon, server):
    account = signup(anon, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"})
    second = signin(anon, account.email)
    third = signin(anon, account.email)
    sessions = admin.get(f"/api/admin/users/{account.id}/sessions").json()["sessions"]
    assert len(sessions) == 3
    assert {"id", "device", "ip", "lastUsedAt"} <= set(sessions[0])
    assert (
        any(s["device"] == "Chrome on Linux" for s in sessions) and sessions[0]["ip"] == "127.0.0.1"
    )

    async def go() -> None:
        ws = await WsClient.connect(server.url, account.access)
        mine = [s for s in account.api.get("/api/auth/sessions").json()["sessions"] if s["current"]]
        r = admin.delete(f"/api/admin/users/{account.id}/sessions/{mine[0]['id']}")
        assert r.status_code == 204
        assert (await ws.closed_with())[0] == 4001

    asyncio.run(go())
    assert error_of(account.api.get("/api/auth/me"))["code"] == "UNAUTHENTICATED"
    assert Api(server.url, second["accessToken"]).get("/api/auth/me").status_code == 200
    again = admin.delete(f"/api/admin/users/{account.id}/sessions/{sessions[0]['id']}")
    assert error_of(admin.delete(f"/api/admin/users/{account.id}/sessions/sess_nobody"))[
        "code"
    ] == ("NOT_FOUND")
    assert again.status_code in (204, 404)
    r = admin.delete(f"/api/admin/users/{account.id}/sessions")
    assert r.status_code == 200 and r.json()["revoked"] >= 1
    for token in (second["accessToken"], third["accessToken"]):
        assert Api(server.url, token).get("/api/auth/me").status_code == 401
    assert admin.get(f"/api/admin/users/{account.id}/sessions").json() == {"sessions": []}
    assert error_of(admin.get("/api/admin/users/usr_nobody/sessions"))["code"] == "NOT_FOUND"
    assert error_of(account.api.get(f"/api/admin/users/{account.id}/sessions"))["status"] == 401


def test_pulse_counts_requests_and_mutations(admin, anon):
    entity = "pulse_" + uuid.uuid4().hex[:8]
    for i in range(20):
        assert admin.post(f"/api/data/{entity}", json={"n": i}).status_code == 201
    body = admin.get("/api/admin/pulse").json()
    assert set(body) == {"node", "at", "nodes", "cluster"}
    own = next(n for n in body["nodes"] if n["node"] == body["node"])
    assert own["requests"]["perSecond"] >= 2.0  # 20 writes within the last 10 s
    assert own["mutations"]["perSecond"] >= 2.0
    assert 0 < own["requests"]["p50Ms"] <= own["requests"]["p99Ms"]
    cluster = body["cluster"]
    assert cluster["requests"]["perSecond"] >= own["requests"]["perSecond"]
    assert {"sockets", "subscriptions", "rooms"} <= set(cluster)
    assert abs(body["at"] - time.time() * 1000) < 60_000
    assert error_of(anon.get("/api/admin/pulse"))["code"] == "UNAUTHENTICATED"


def test_rooms_lists_rooms_with_their_peers(admin, anon, server):
    account = signup(anon)
    room = "adm-" + uuid.uuid4().hex[:8]

    async def go() -> None:
        ws = await WsClient.connect(server.url, account.access)
        await ws.send({"type": "presence-enter", "room": room, "data": {"name": "x"}})
        await ws.expect("presence-change", room=room)
        rooms = admin.get("/api/admin/rooms", params={"limit": 1000}).json()["rooms"]
        assert {"room": room, "peers": 1} in rooms
        pulse = admin.get("/api/admin/pulse").json()
        assert pulse["cluster"]["rooms"] >= 1 and pulse["cluster"]["sockets"] >= 1
        peers = admin.get(f"/api/presence/{room}").json()["peers"]
        assert [p["userId"] for p in peers] == [account.id]
        ws.close()

    asyncio.run(go())
    assert error_of(admin.get("/api/admin/rooms", params={"limit": "0"}))["code"] == (
        "INVALID_ARGUMENT"
    )
    assert error_of(account.api.get("/api/admin/rooms"))["code"] == "PERMISSION_DENIED"


def test_app_without_app_is_empty(admin):
    body = admin.get("/api/admin/app").json()
    assert body == {"app": None, "schema": {}, "rules": {}, "functions": []}


def test_app_shows_schema_rules_and_function_arguments(make_server, backend):
    server = make_server(backend, APP="examples/todos.py")
    body = Api(server.url, "test-admin-token-" + "x" * 32).get("/api/admin/app").json()
    assert body["app"] == "examples/todos.py"
    assert body["schema"]["todos"]["attributes"]["title"] == {"type": "string", "required": True}
    assert body["rules"]["todos"]["read"] == {"userId": "$auth.id"}
    (fn,) = body["functions"]
    assert fn["name"] == "createTodo"
    assert fn["arguments"]["required"] == ["title", "listId"]


def test_dashboard_files_are_served_with_a_strict_policy(anon):
    page = anon.get("/admin")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="/admin/main.js">' in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["Referrer-Policy"] == "no-referrer"
    module = anon.get("/admin/views/data.js")
    assert module.status_code == 200
    assert module.headers["Content-Type"].startswith("text/javascript")
    assert anon.request("HEAD", "/admin/").status_code == 200
    for missing in ("/admin/nope.js", "/admin/../setup.cfg", "/admin/%2e%2e/setup.cfg"):
        assert error_of(anon.get(missing))["code"] == "NOT_FOUND", missing
