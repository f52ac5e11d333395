"""POST /api/mutate: the seed's batch, and its atomicity checked by reading back."""

from __future__ import annotations

import uuid

import pytest

from tests.serverproc import error_of


def _entity() -> str:
    return "m_" + uuid.uuid4().hex[:10]


def test_seed_example(admin):
    entity = _entity()
    admin.post(f"/api/data/{entity}", json={"id": "existing-uuid", "title": "x", "done": False})
    admin.post(f"/api/data/{entity}", json={"id": "old-uuid", "title": "y"})
    response = admin.post(
        "/api/mutate",
        json={
            "ops": [
                {
                    "entity": entity,
                    "id": "new-uuid",
                    "op": "set",
                    "data": {"title": "New", "done": False},
                },
                {"entity": entity, "id": "existing-uuid", "op": "merge", "data": {"done": True}},
                {"entity": entity, "id": "old-uuid", "op": "delete"},
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tx", "results"} and isinstance(body["tx"], int)
    assert body["results"] == [
        {"op": "set", "id": "new-uuid", "status": "created"},
        {"op": "merge", "id": "existing-uuid", "status": "updated"},
        {"op": "delete", "id": "old-uuid", "status": "deleted"},
    ]
    assert admin.get(f"/api/data/{entity}/new-uuid").json()["data"]["title"] == "New"
    assert admin.get(f"/api/data/{entity}/existing-uuid").json()["data"]["done"] is True
    assert admin.get(f"/api/data/{entity}/old-uuid").status_code == 404


def test_set_replaces_whole_row(admin):
    entity = _entity()
    admin.post(f"/api/data/{entity}", json={"id": "r1", "a": 1, "b": 2})
    body = admin.post(
        "/api/mutate", json={"ops": [{"entity": entity, "id": "r1", "op": "set", "data": {"c": 3}}]}
    ).json()
    assert body["results"][0]["status"] == "updated"
    row = admin.get(f"/api/data/{entity}/r1").json()["data"]
    assert "a" not in row and row["c"] == 3


def test_ops_in_one_batch_see_each_other(admin):
    entity = _entity()
    body = admin.post(
        "/api/mutate",
        json={
            "ops": [
                {"entity": entity, "id": "a", "op": "set", "data": {"n": 1}},
                {"entity": entity, "id": "a", "op": "merge", "data": {"m": 2}},
            ]
        },
    ).json()
    assert [r["status"] for r in body["results"]] == ["created", "updated"]
    row = admin.get(f"/api/data/{entity}/a").json()["data"]
    assert row["n"] == 1 and row["m"] == 2


BAD_BATCHES = [
    ({"ops": []}, "INVALID_ARGUMENT"),
    ({"ops": "nope"}, "INVALID_ARGUMENT"),
    ({}, "INVALID_ARGUMENT"),
    ({"ops": [{"entity": "ok", "id": "x", "op": "upsert", "data": {}}]}, "INVALID_ARGUMENT"),
    ({"ops": [{"entity": "Bad-Name", "id": "x", "op": "set", "data": {}}]}, "INVALID_ARGUMENT"),
    ({"ops": [{"entity": "ok", "id": "", "op": "set", "data": {}}]}, "INVALID_ARGUMENT"),
    ({"ops": [{"entity": "ok", "id": "x", "op": "set", "data": [1]}]}, "INVALID_ARGUMENT"),
    ({"ops": [{"entity": "ok", "id": "x", "op": "set"}]}, "INVALID_ARGUMENT"),
    ({"ops": [{"entity": "ok", "id": "x", "op": "delete", "data": {}}]}, "INVALID_ARGUMENT"),
    (
        {"ops": [{"entity": "ok", "id": "x", "op": "set", "data": {}, "extra": 1}]},
        "INVALID_ARGUMENT",
    ),
    ({"ops": [5]}, "INVALID_ARGUMENT"),
]


@pytest.mark.parametrize(("body", "code"), BAD_BATCHES)
def test_invalid_op_rejects_whole_batch(admin, body, code):
    entity = _entity()
    ops = [{"entity": entity, "id": "first", "op": "set", "data": {"v": 1}}]
    if isinstance(body.get("ops"), list) and body["ops"]:
        body = {"ops": ops + body["ops"]}
    response = admin.post("/api/mutate", json=body)
    assert response.status_code == 400
    assert error_of(response)["code"] == code
    assert admin.get(f"/api/data/{entity}/first").status_code == 404


@pytest.mark.parametrize("op", ["merge", "delete"])
def test_missing_row_rejects_whole_batch(admin, op):
    entity = _entity()
    admin.post(f"/api/data/{entity}", json={"id": "keep", "v": 1})
    missing = {"entity": entity, "id": "missing", "op": op}
    if op == "merge":
        missing["data"] = {"v": 2}
    response = admin.post(
        "/api/mutate",
        json={
            "ops": [
                {"entity": entity, "id": "new", "op": "set", "data": {"v": 1}},
                {"entity": entity, "id": "keep", "op": "merge", "data": {"v": 99}},
                missing,
            ]
        },
    )
    assert response.status_code == 404 and error_of(response)["code"] == "NOT_FOUND"
    assert "missing" in error_of(response)["message"]
    assert admin.get(f"/api/data/{entity}/new").status_code == 404
    assert admin.get(f"/api/data/{entity}/keep").json()["data"]["v"] == 1
    tx_before = admin.post(f"/api/data/{entity}", json={"probe": 1}).json()["tx"]
    assert admin.get(f"/api/data/{entity}").json()["total"] == 2
    assert tx_before > 0


def test_failed_batch_consumes_no_tx_id(admin):
    entity = _entity()
    first = admin.post(f"/api/data/{entity}", json={"a": 1}).json()["tx"]
    admin.post("/api/mutate", json={"ops": [{"entity": entity, "id": "zz", "op": "delete"}]})
    second = admin.post(f"/api/data/{entity}", json={"a": 2}).json()["tx"]
    assert second == first + 1
