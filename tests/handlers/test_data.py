"""The data REST API over real HTTP, on both backends."""

from __future__ import annotations

import json
import uuid

from tests.serverproc import error_of


def _entity() -> str:
    return "t_" + uuid.uuid4().hex[:10]


def test_create_get_update_delete_roundtrip(admin):
    entity = _entity()
    created = admin.post(f"/api/data/{entity}", json={"title": "Buy groceries", "done": False})
    assert created.status_code == 201
    body = created.json()
    row = body["data"]
    assert uuid.UUID(row["id"]).version == 4
    assert row["title"] == "Buy groceries" and row["done"] is False
    assert isinstance(row["createdAt"], int) and row["createdAt"] == row["updatedAt"]
    assert isinstance(body["tx"], int) and body["tx"] > 0

    got = admin.get(f"/api/data/{entity}/{row['id']}")
    assert got.status_code == 200
    assert got.json() == {"data": row}

    patched = admin.patch(f"/api/data/{entity}/{row['id']}", json={"done": True})
    assert patched.status_code == 200
    assert patched.json()["data"]["done"] is True
    assert patched.json()["data"]["title"] == "Buy groceries"
    assert patched.json()["tx"] > body["tx"]
    assert patched.json()["data"]["updatedAt"] >= row["updatedAt"]
    assert patched.json()["data"]["createdAt"] == row["createdAt"]

    deleted = admin.delete(f"/api/data/{entity}/{row['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    gone = admin.get(f"/api/data/{entity}/{row['id']}")
    assert gone.status_code == 404 and error_of(gone)["code"] == "NOT_FOUND"


def test_post_uses_given_id_and_refuses_duplicates(admin):
    entity = _entity()
    first = admin.post(f"/api/data/{entity}", json={"id": "todo_abc", "title": "a"})
    assert first.status_code == 201 and first.json()["data"]["id"] == "todo_abc"
    again = admin.post(f"/api/data/{entity}", json={"id": "todo_abc", "title": "b"})
    assert again.status_code == 409 and error_of(again)["code"] == "CONFLICT"
    assert admin.get(f"/api/data/{entity}/todo_abc").json()["data"]["title"] == "a"


def test_server_fields_cannot_be_set_by_client(admin):
    entity = _entity()
    row = admin.post(
        f"/api/data/{entity}", json={"title": "x", "createdAt": 1, "updatedAt": 2}
    ).json()["data"]
    assert row["createdAt"] > 1 and row["updatedAt"] > 2


def test_patch_merges_nested_objects_and_null_removes(admin):
    entity = _entity()
    row = admin.post(
        f"/api/data/{entity}",
        json={"title": "t", "meta": {"a": 1, "b": {"c": 2, "d": 3}}, "gone": "soon"},
    ).json()["data"]
    patched = admin.patch(
        f"/api/data/{entity}/{row['id']}",
        json={"meta": {"b": {"c": 20, "d": None}, "e": 5}, "gone": None},
    ).json()["data"]
    assert patched["meta"] == {"a": 1, "b": {"c": 20}, "e": 5}
    assert "gone" not in patched
    stored = admin.get(f"/api/data/{entity}/{row['id']}").json()["data"]
    assert stored == patched


def test_patch_and_delete_missing_rows_are_404(admin):
    entity = _entity()
    assert error_of(admin.patch(f"/api/data/{entity}/nope", json={"a": 1}))["code"] == "NOT_FOUND"
    assert error_of(admin.delete(f"/api/data/{entity}/nope"))["code"] == "NOT_FOUND"


def test_list_paging_order_and_where(admin):
    entity = _entity()
    for i in range(25):
        admin.post(f"/api/data/{entity}", json={"n": i, "even": i % 2 == 0, "tag": f"t{i % 3}"})
    page = admin.get(f"/api/data/{entity}").json()
    assert page["total"] == 25 and page["hasMore"] is True and len(page["data"]) == 20

    ordered = admin.get(f"/api/data/{entity}", params={"order": "-n", "limit": 5}).json()
    assert [r["n"] for r in ordered["data"]] == [24, 23, 22, 21, 20]

    rest = admin.get(f"/api/data/{entity}", params={"order": "n", "limit": 10, "offset": 20}).json()
    assert [r["n"] for r in rest["data"]] == [20, 21, 22, 23, 24]
    assert rest["hasMore"] is False and rest["total"] == 25

    evens = admin.get(
        f"/api/data/{entity}", params={"where": json.dumps({"even": True}), "limit": 100}
    ).json()
    assert evens["total"] == 13 and all(r["n"] % 2 == 0 for r in evens["data"])

    two_keys = admin.get(f"/api/data/{entity}", params={"order": "tag,-n", "limit": 4}).json()[
        "data"
    ]
    assert [(r["tag"], r["n"]) for r in two_keys] == [
        ("t0", 24),
        ("t0", 21),
        ("t0", 18),
        ("t0", 15),
    ]


def test_list_bad_parameters(admin):
    entity = _entity()
    for params in (
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"offset": "-1"},
        {"where": "{not json"},
        {"where": "[1]"},
        {"where": json.dumps({"$bogus": 1})},
        {"order": "a,,b"},
        {"order": "a b"},
    ):
        response = admin.get(f"/api/data/{entity}", params=params)
        assert response.status_code == 400, params
        assert error_of(response)["code"] == "INVALID_ARGUMENT"


def test_bad_entity_names_and_ids(admin):
    for path in ("/api/data/Todos", "/api/data/1abc", "/api/data/" + "a" * 64):
        assert error_of(admin.get(path))["code"] == "INVALID_ARGUMENT"
    assert error_of(admin.get("/api/data/todos/" + "x" * 129))["code"] == "INVALID_ARGUMENT"
    bad_id = admin.post("/api/data/todos", json={"id": "has space"})
    assert error_of(bad_id)["code"] == "INVALID_ARGUMENT"
    bad_id_type = admin.post("/api/data/todos", json={"id": 5})
    assert error_of(bad_id_type)["code"] == "INVALID_ARGUMENT"


def test_bodies_must_be_json_objects(admin):
    entity = _entity()
    for kwargs in (
        {"data": "not json", "headers": {"Content-Type": "application/json"}},
        {"json": [1, 2]},
        {"data": '{"a": 1}', "headers": {"Content-Type": "text/plain"}},
        {"data": b"\xff\xfe", "headers": {"Content-Type": "application/json"}},
    ):
        response = admin.post(f"/api/data/{entity}", **kwargs)
        assert response.status_code == 400, kwargs
        assert error_of(response)["code"] == "INVALID_ARGUMENT"
    assert admin.get(f"/api/data/{entity}").json()["total"] == 0


def test_patch_cannot_change_id(admin):
    entity = _entity()
    row = admin.post(f"/api/data/{entity}", json={"a": 1}).json()["data"]
    response = admin.patch(f"/api/data/{entity}/{row['id']}", json={"id": "other"})
    assert error_of(response)["code"] == "INVALID_ARGUMENT"


def test_unicode_and_nested_values_roundtrip(admin):
    entity = _entity()
    value = {"name": "Zoë ☃ 東京", "deep": {"list": [1, 2.5, None, True, {"x": "/"}]}}
    row = admin.post(f"/api/data/{entity}", json=value).json()["data"]
    got = admin.get(f"/api/data/{entity}/{row['id']}").json()["data"]
    assert got["name"] == value["name"] and got["deep"] == value["deep"]
