"""The writer against the real server, on both backends: sockets that close with
mutations pending, and bad writes among good ones in one group commit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import uuid

import pytest

from store.rows import MAX_DEPTH, MAX_NAME
from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of
from tests.wsclient import WsClient


def _nested(depth: int) -> dict:
    """An object `depth` levels deep, itself counted."""
    doc: dict = {"leaf": 1}
    for _ in range(depth - 1):
        doc = {"a": doc}
    return doc


def test_websockets_closing_mid_mutation_leave_writes_working(server, anon):
    writer = signup(anon)
    entity = "closing_" + uuid.uuid4().hex[:8]

    async def go() -> None:
        for round in range(20):
            clients = [await WsClient.connect(server.url, writer.access) for _ in range(5)]
            for n, client in enumerate(clients):
                for i in range(5):
                    op = {"op": "set", "entity": entity, "id": f"r{round}-{n}-{i}", "data": {}}
                    await client.send({"type": "mutate", "id": f"m{i}", "ops": [op]})
                client.close()  # before any answer: the mutations are pending

    asyncio.run(go())
    other = signup(anon)
    response = other.api.post(f"/api/data/{entity}_after", json={"still": "writing"})
    assert response.status_code == 201, response.text
    health = anon.get("/api/admin/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy", health.text
    assert "reason" not in health.json()  # the seed's shape
    # A mutation the server handled before the close is applied, not dropped (frames
    # still unread when the client's TCP connection went away never were handled).
    listed = writer.api.get(f"/api/data/{entity}", params={"limit": 1000}).json()
    assert 0 < listed["total"] <= 500


def _post(api: Api, path: str, body: object) -> tuple[int, dict]:
    response = api.post(path, json=body)
    return response.status_code, response.json()


@pytest.fixture
def schema_server(make_server, backend):
    """A server whose app declares a unique attribute (an index on PostgreSQL)."""
    return make_server(backend, APP="tests/apps/schema_app.py")


def test_bad_writes_in_a_group_fail_alone(schema_server, backend):
    api = Api(schema_server.url, ADMIN_TOKEN)
    entity = "poison_" + uuid.uuid4().hex[:8]
    deep, long_name = _nested(500), "k" + secrets.token_hex(1500)
    bad = [
        (f"/api/data/{entity}", deep),
        (f"/api/data/{entity}", {long_name: 1}),
        (f"/api/data/{entity}", {"nested": {"inner": [{long_name: 1}]}}),
        ("/api/mutate", {"ops": [{"op": "set", "entity": entity, "id": "d", "data": deep}]}),
        ("/api/mutate", {"ops": [{"op": "set", "entity": entity, "id": "x", "data": {"x": deep}}]}),
        (
            "/api/mutate",
            {"ops": [{"op": "set", "entity": entity, "id": "n", "data": {long_name: 2}}]},
        ),
    ] * 3
    # Over the 2,000-byte cap on indexed values (on PostgreSQL the unique index could
    # not take them either): refused alone, in the middle of the good writes.
    bad += [("/api/data/handles", {"name": secrets.token_hex(5000)}) for _ in range(3)]
    good = [(f"/api/data/{entity}", {"n": i}) for i in range(120)]
    requests = good[:60] + bad + good[60:]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda r: _post(Api(api.base, ADMIN_TOKEN), *r), requests))
    for (path, body), (status, answer) in zip(requests, results, strict=True):
        if (path, body) in good:
            assert status == 201, answer
        elif path == "/api/data/handles":
            assert status == 400, answer
        else:
            assert status == 400 and answer["error"]["code"] == "INVALID_ARGUMENT", answer
    listed = api.get(f"/api/data/{entity}", params={"limit": 1000}).json()
    assert listed["total"] == len(good)
    assert sorted(r["n"] for r in listed["data"]) == list(range(120))


def test_document_limits_on_every_write_path(server, anon):
    user = signup(anon)
    entity = "limits_" + uuid.uuid4().hex[:8]
    ok_depth, ok_name = _nested(MAX_DEPTH), "n" * MAX_NAME
    assert user.api.post(f"/api/data/{entity}", json={"id": "a", **ok_depth}).status_code == 201
    assert user.api.post(f"/api/data/{entity}", json={ok_name: 1}).status_code == 201
    too_deep, too_long = _nested(MAX_DEPTH + 1), {"x": [{"n" * (MAX_NAME + 1): 1}]}
    for response in (
        user.api.post(f"/api/data/{entity}", json=too_deep),
        user.api.post(f"/api/data/{entity}", json=too_long),
        user.api.patch(f"/api/data/{entity}/a", json=too_deep),
        user.api.patch(f"/api/data/{entity}/a", json=too_long),
        user.api.post(
            "/api/mutate",
            json={"ops": [{"op": "merge", "entity": entity, "id": "a", "data": too_deep}]},
        ),
    ):
        error = error_of(response)
        assert error["code"] == "INVALID_ARGUMENT", error
        assert str(MAX_DEPTH) in error["message"] or str(MAX_NAME) in error["message"]

    async def ws() -> list[dict]:
        client = await WsClient.connect(server.url, user.access)
        answers = []
        for i, data in enumerate((too_deep, too_long)):
            op = {"op": "set", "entity": entity, "id": f"w{i}", "data": data}
            await client.send({"type": "mutate", "id": f"m{i}", "ops": [op]})
            answers.append(await client.expect("mutate-error", id=f"m{i}"))
        client.close()
        return answers

    for answer in asyncio.run(ws()):
        assert answer["error"]["code"] == "INVALID_ARGUMENT", answer
    assert user.api.get(f"/api/data/{entity}").json()["total"] == 2
