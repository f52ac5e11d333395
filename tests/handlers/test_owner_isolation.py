"""Owner-only data: two users see and change only their own rows; the admin sees all.
Over real HTTP on both backends."""

from __future__ import annotations

import uuid

import pytest

from tests.handlers.accounts import Account, signup
from tests.serverproc import error_of


def _entity() -> str:
    return "o_" + uuid.uuid4().hex[:10]


@pytest.fixture
def pair(anon) -> tuple[Account, Account]:
    return signup(anon), signup(anon)


def test_rows_belong_to_their_creator(pair):
    alice, bob = pair
    entity = _entity()
    row = alice.api.post(f"/api/data/{entity}", json={"title": "a"}).json()["data"]
    assert row["userId"] == alice.id
    bob.api.post(f"/api/data/{entity}", json={"title": "b"})
    mine = alice.api.get(f"/api/data/{entity}").json()
    assert [r["title"] for r in mine["data"]] == ["a"] and mine["total"] == 1
    theirs = bob.api.get(f"/api/data/{entity}").json()
    assert [r["title"] for r in theirs["data"]] == ["b"] and theirs["total"] == 1


def test_others_rows_are_not_found(pair):
    alice, bob = pair
    entity = _entity()
    row = alice.api.post(f"/api/data/{entity}", json={"title": "a"}).json()["data"]
    path = f"/api/data/{entity}/{row['id']}"
    for response in (
        bob.api.get(path),
        bob.api.patch(path, json={"title": "stolen"}),
        bob.api.delete(path),
    ):
        assert response.status_code == 404, response.text
        assert error_of(response)["code"] == "NOT_FOUND"
    merge = bob.api.post(
        "/api/mutate",
        json={"ops": [{"entity": entity, "id": row["id"], "op": "merge", "data": {"x": 1}}]},
    )
    assert merge.status_code == 404
    overwrite = bob.api.post(
        "/api/mutate",
        json={"ops": [{"entity": entity, "id": row["id"], "op": "set", "data": {"x": 1}}]},
    )
    assert overwrite.status_code == 404
    assert alice.api.get(path).json()["data"]["title"] == "a"


def test_user_id_cannot_be_forged_or_changed(pair):
    alice, bob = pair
    entity = _entity()
    forged = alice.api.post(f"/api/data/{entity}", json={"title": "x", "userId": bob.id})
    assert forged.status_code == 403
    assert error_of(forged)["code"] == "PERMISSION_DENIED"
    row = alice.api.post(f"/api/data/{entity}", json={"title": "a"}).json()["data"]
    moved = alice.api.patch(f"/api/data/{entity}/{row['id']}", json={"userId": bob.id})
    assert moved.status_code == 403
    assert bob.api.get(f"/api/data/{entity}").json()["total"] == 0


def test_owner_updates_and_deletes_their_own(pair):
    alice, _ = pair
    entity = _entity()
    row = alice.api.post(f"/api/data/{entity}", json={"title": "a"}).json()["data"]
    path = f"/api/data/{entity}/{row['id']}"
    patched = alice.api.patch(path, json={"done": True})
    assert patched.status_code == 200 and patched.json()["data"]["userId"] == alice.id
    assert alice.api.delete(path).status_code == 204


def test_admin_sees_everyone(admin, pair):
    alice, bob = pair
    entity = _entity()
    alice.api.post(f"/api/data/{entity}", json={"title": "a"})
    bob.api.post(f"/api/data/{entity}", json={"title": "b"})
    listed = admin.get(f"/api/data/{entity}").json()
    assert listed["total"] == 2
    assert {r["userId"] for r in listed["data"]} == {alice.id, bob.id}
    row = listed["data"][0]
    assert admin.patch(f"/api/data/{entity}/{row['id']}", json={"seen": True}).status_code == 200
