"""Revocations on one server process reach the other's in-memory session cache within
the documented bound, SESSION_CHECK_INTERVAL (plus the time one check takes): two
processes on one PostgreSQL database, REST requests with a user's token."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.handlers.accounts import PASSWORD, signin, signup
from tests.serverproc import Api

INTERVAL = 1.0
DEADLINE = INTERVAL + 10  # a generous margin: the box is shared and may be slow


@pytest.fixture
def two_servers_env() -> dict[str, str]:
    return {"SESSION_CHECK_INTERVAL": str(INTERVAL)}


@pytest.fixture
def nodes(two_servers) -> list[Api]:
    return [Api(node.url) for node in two_servers[1]]


def _path() -> str:
    return f"/api/data/pb{uuid.uuid4().hex[:10]}"


def _warm(api: Api, path: str) -> None:
    for _ in range(3):
        response = api.get(path)
        assert response.status_code == 200, response.text


def _refused_within_bound(api: Api, path: str) -> None:
    """Poll until the node refuses the token; fail past the bound plus a margin."""
    deadline = time.monotonic() + DEADLINE
    while True:
        status = api.get(path).status_code
        if status == 401:
            return
        assert status == 200
        assert time.monotonic() < deadline, "the revocation never reached the other node"
        time.sleep(0.1)


def test_sign_out_on_a_is_refused_on_b(nodes):
    a, b = nodes
    path = _path()
    account = signup(a)
    on_b = b.with_token(account.access)
    _warm(on_b, path)
    assert a.with_token(account.access).post("/api/auth/signout").status_code == 204
    # The account endpoints read the session from the database: refused at once.
    assert on_b.get("/api/auth/me").status_code == 401
    _refused_within_bound(on_b, path)


def test_password_change_on_a_is_refused_on_b(nodes):
    a, b = nodes
    path = _path()
    account = signup(a)
    other = a.with_token(signin(a, account.email)["accessToken"])
    on_b = b.with_token(account.access)
    _warm(on_b, path)
    body = {"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}
    assert other.post("/api/auth/password", json=body).status_code == 204
    _refused_within_bound(on_b, path)
    _warm(b.with_token(other.token), path)


def test_refresh_reuse_on_a_is_refused_on_b(nodes):
    a, b = nodes
    path = _path()
    account = signup(a)
    on_b = b.with_token(account.access)
    _warm(on_b, path)
    refresh = {"refreshToken": account.refresh}
    assert a.post("/api/auth/refresh", json=refresh).status_code == 200
    assert a.post("/api/auth/refresh", json=refresh).status_code == 401  # reused: revoked
    _refused_within_bound(on_b, path)
