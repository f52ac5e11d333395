"""Failing writes among good ones in one group commit, over REST, on both backends.
On PostgreSQL a group runs pipelined with no savepoint per mutation: a batch that
fails after writing, and a unique conflict with a write earlier in the same group,
must still fail only their own request."""

from __future__ import annotations

import concurrent.futures
import uuid

import pytest

from tests.serverproc import ADMIN_TOKEN, Api


@pytest.fixture
def schema_server(make_server, backend):
    """A server whose app declares `handles.name` unique."""
    return make_server(backend, APP="tests/apps/schema_app.py")


def _post(base: str, path: str, body: object) -> tuple[int, dict]:
    response = Api(base, ADMIN_TOKEN).post(path, json=body)
    return response.status_code, response.json()


def test_failures_in_a_group_fail_alone(schema_server):
    entity = "group_" + uuid.uuid4().hex[:8]
    name = "taken-" + uuid.uuid4().hex[:8]
    half = [
        (
            "/api/mutate",
            {
                "ops": [
                    {"op": "set", "entity": entity, "id": f"half{i}", "data": {"n": -1}},
                    {"op": "merge", "entity": entity, "id": f"missing{i}", "data": {"n": -1}},
                ]
            },
        )
        for i in range(6)
    ]
    same_name = [("/api/data/handles", {"name": name, "score": i}) for i in range(6)]
    good = [(f"/api/data/{entity}", {"n": i}) for i in range(90)]
    requests = good[:30] + half[:3] + same_name + good[30:60] + half[3:] + good[60:]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda r: _post(schema_server.url, *r), requests))
    codes: dict[str, list[int | str]] = {"good": [], "half": [], "name": []}
    for request, (status, answer) in zip(requests, results, strict=True):
        kind = "good" if request in good else "half" if request in half else "name"
        codes[kind].append(status if status < 400 else answer["error"]["code"])
    assert codes["good"] == [201] * 90
    assert codes["half"] == ["NOT_FOUND"] * 6
    assert sorted(map(str, codes["name"])) == ["201"] + ["CONFLICT"] * 5
    api = Api(schema_server.url, ADMIN_TOKEN)
    rows = api.get(f"/api/data/{entity}", params={"limit": 1000}).json()["data"]
    assert sorted(r["n"] for r in rows) == list(range(90))  # no half-applied batch
    handles = api.get("/api/data/handles", params={"limit": 1000}).json()["data"]
    assert [h["name"] for h in handles].count(name) == 1
