"""Revocations on this server process apply at once, though tokens and sessions are
held in memory (store.session_cache): REST requests with an ended session's token are
refused on the next request, and its sockets close without waiting for the periodic
session check. Over real HTTP on both backends."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pyotp

from tests.handlers.accounts import PASSWORD, Account, signin, signup
from tests.serverproc import Api, error_of
from tests.wsclient import WsClient


def _entity() -> str:
    return "pa" + uuid.uuid4().hex[:10]


def _warm(api: Api, path: str) -> None:
    """Requests that put the token and its session in the server's cache."""
    for _ in range(3):
        response = api.get(path)
        assert response.status_code == 200, response.text


def _refused(api: Api, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 401, response.text
    assert error_of(response)["code"] == "UNAUTHENTICATED"


def _session_id(api: Api) -> str:
    mine = api.get("/api/auth/sessions").json()
    return next(s["id"] for s in mine["sessions"] if s["current"])


def test_sign_out_refuses_the_token_at_once(anon):
    path = f"/api/data/{_entity()}"
    account = signup(anon)
    _warm(account.api, path)
    assert account.api.post("/api/auth/signout").status_code == 204
    _refused(account.api, path)
    query = account.api.post("/api/query", json={_entity(): {}})
    assert query.status_code == 401, query.text


def test_deleting_a_session_refuses_its_token_at_once(anon):
    path = f"/api/data/{_entity()}"
    account = signup(anon)
    other = anon.with_token(signin(anon, account.email)["accessToken"])
    _warm(account.api, path)
    assert other.delete(f"/api/auth/sessions/{_session_id(account.api)}").status_code == 204
    _refused(account.api, path)
    _warm(other, path)


def test_password_change_refuses_the_other_sessions_at_once(anon):
    path = f"/api/data/{_entity()}"
    account = signup(anon)
    other = anon.with_token(signin(anon, account.email)["accessToken"])
    _warm(account.api, path)
    body = {"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}
    assert other.post("/api/auth/password", json=body).status_code == 204
    _refused(account.api, path)
    _warm(other, path)


def test_refresh_token_reuse_refuses_the_session_at_once(anon):
    path = f"/api/data/{_entity()}"
    account = signup(anon)
    _warm(account.api, path)
    refresh = {"refreshToken": account.refresh}
    fresh = anon.post("/api/auth/refresh", json=refresh)
    assert fresh.status_code == 200
    _warm(anon.with_token(fresh.json()["accessToken"]), path)
    assert anon.post("/api/auth/refresh", json=refresh).status_code == 401  # reused
    _refused(account.api, path)
    _refused(anon.with_token(fresh.json()["accessToken"]), path)


def test_enabling_mfa_refuses_the_other_sessions_at_once(anon):
    path = f"/api/data/{_entity()}"
    account: Account = signup(anon)
    other = anon.with_token(signin(anon, account.email)["accessToken"])
    _warm(other, path)
    secret = account.api.post("/api/auth/mfa/enroll", json={"password": PASSWORD}).json()["secret"]
    code = pyotp.TOTP(secret).at(time.time())
    enabled = account.api.post("/api/auth/mfa/enable", json={"code": code, "password": PASSWORD})
    assert enabled.status_code == 200, enabled.text
    _refused(other, path)
    _warm(account.api, path)


def test_a_local_sign_out_closes_sockets_before_the_periodic_check(make_server, backend):
    """The periodic check runs once a minute here: the socket closes long before."""
    server = make_server(backend, SESSION_CHECK_INTERVAL="60")
    anon = Api(server.url)
    account = signup(anon)

    async def go() -> tuple[int | None, str]:
        client = await WsClient.connect(server.url, account.access)
        await client.send({"type": "subscribe", "id": "s", "query": {_entity(): {}}})
        await client.expect("q-init", id="s")
        signed_out = await asyncio.to_thread(account.api.post, "/api/auth/signout")
        assert signed_out.status_code == 204
        return await client.closed_with(within=20)

    code, reason = asyncio.run(go())
    assert code == 4001 and "revoked" in reason.lower()


def test_a_cached_token_is_refused_once_past_its_exp(make_server, backend):
    """The verified-token cache never serves a token past `exp` (30 s: the least
    ACCESS_TOKEN_TTL allows)."""
    server = make_server(backend, ACCESS_TOKEN_TTL="30")
    account = signup(Api(server.url))
    path = f"/api/data/{_entity()}"
    _warm(account.api, path)
    exp = jwt.decode(account.access, options={"verify_signature": False})["exp"]
    while time.time() < exp - 2:
        _warm(account.api, path)  # keeps it the most recently used entry
        time.sleep(1)
    time.sleep(max(0.0, exp - time.time()) + 0.2)
    _refused(account.api, path)
