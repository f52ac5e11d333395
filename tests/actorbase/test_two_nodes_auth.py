"""Account races settled by the database: two server processes on one PostgreSQL
database share lockout counts, refresh rotation and sign-out."""

from __future__ import annotations

import concurrent.futures

import pytest

from tests.handlers.accounts import PASSWORD, signup
from tests.serverproc import Api, PostgresDatabase, ServerProcess


@pytest.fixture
def two_nodes(pg_base_url, tmp_path):
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    db = PostgresDatabase(pg_base_url)
    # Each its own data dir, as on separate hosts: the signing key is in the database.
    nodes = [ServerProcess(tmp_path / n, db.url, LOCKOUT_THRESHOLD=4).start() for n in "ab"]
    try:
        yield [Api(n.url) for n in nodes]
    finally:
        for node in nodes:
            node.stop()
        db.drop()


def test_lockout_counts_failures_from_both_nodes(two_nodes):
    a, b = two_nodes
    account = signup(a)
    wrong = {"email": account.email, "password": "not the password"}
    nodes = [b, a, b, a]
    statuses = [node.post("/api/auth/signin", json=wrong).status_code for node in nodes]
    assert statuses == [401] * 4
    right = {"email": account.email, "password": PASSWORD}
    for node in (a, b):
        response = node.post("/api/auth/signin", json=right)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "ACCOUNT_LOCKED"


def test_a_refresh_token_rotates_once_across_nodes(two_nodes):
    a, b = two_nodes
    account = signup(a)

    def refresh(node: Api) -> int:
        return node.post("/api/auth/refresh", json={"refreshToken": account.refresh}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(refresh, [a, b] * 4))
    assert codes.count(200) == 1, codes
    assert set(codes) == {200, 401}
    # Reuse of the rotated token revoked the whole session on both nodes.
    for node in (a, b):
        me = node.with_token(account.access).get("/api/auth/me")
        assert me.status_code == 401


def test_sign_out_on_one_node_takes_effect_on_the_other(two_nodes):
    a, b = two_nodes
    account = signup(a)
    assert b.with_token(account.access).get("/api/auth/me").status_code == 200
    assert a.with_token(account.access).post("/api/auth/signout").status_code == 204
    assert b.with_token(account.access).get("/api/auth/me").status_code == 401


def test_sign_out_on_one_node_closes_sockets_on_the_other(two_nodes):
    import asyncio
    import time

    from tests.wsclient import WsClient

    a, b = two_nodes
    account = signup(a)

    async def go() -> tuple[int | None, float]:
        client = await WsClient.connect(b.base, account.access)
        await client.send({"type": "subscribe", "id": "s", "query": {"two_node_ws": {}}})
        await client.expect("q-init", id="s")
        started = time.monotonic()
        signed_out = await asyncio.to_thread(a.with_token(account.access).post, "/api/auth/signout")
        assert signed_out.status_code == 204
        code, _ = await client.closed_with()
        return code, time.monotonic() - started

    code, elapsed = asyncio.run(go())
    assert code == 4001 and elapsed < 5
