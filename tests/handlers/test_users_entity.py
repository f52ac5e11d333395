"""The system entity `users`, served from the accounts table, over real HTTP and
WebSocket on both backends: who sees which rows and emails, links to and from it,
and that it cannot be written through the data API."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest

from tests.handlers.accounts import Account, signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of
from tests.wsclient import WsClient

EMAIL_DENIED = "You do not have read access to users.email"
WRITE_DENIED = "users are managed through /api/auth"


@pytest.fixture(scope="module")
def pair(server) -> tuple[Account, Account]:
    anon = Api(server.url)
    return signup(anon), signup(anon)


@pytest.fixture(scope="module")
def role_admin(server, pair) -> Account:
    """A user given role `admin` through the admin API (not the admin token)."""
    admin = Api(server.url, ADMIN_TOKEN)
    account = signup(Api(server.url))
    assert admin.patch(f"/api/admin/users/{account.id}", json={"role": "admin"}).status_code == 200
    r = Api(server.url).post("/api/auth/refresh", json={"refreshToken": account.refresh})
    assert r.status_code == 200, r.text
    token = r.json()["accessToken"]
    return Account(
        account.email, account.id, token, r.json()["refreshToken"], Api(server.url, token)
    )


def both(pair: tuple[Account, Account], **q: Any) -> dict[str, Any]:
    """A `users` query limited to the pair (other tests in the module sign up more)."""
    return {"users": {"$where": {"id": {"$in": [a.id for a in pair]}}, **q}}


def query(api: Api, body: Any) -> dict[str, Any]:
    r = api.post("/api/query", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in rows}


def test_each_user_sees_both_rows_and_only_their_own_email(pair):
    for me, other in (pair, pair[::-1]):
        rows = by_id(query(me.api, both(pair))["users"])
        assert set(rows) == {me.id, other.id}
        mine, theirs = rows[me.id], rows[other.id]
        assert set(mine) == {"id", "email", "createdAt", "updatedAt", "userId"}
        assert mine["email"] == me.email and mine["userId"] == me.id
        assert isinstance(mine["createdAt"], int) and mine["createdAt"] > 1_600_000_000_000
        assert mine["updatedAt"] == mine["createdAt"]
        assert set(theirs) == {"id", "createdAt", "updatedAt", "userId"}
        assert theirs["userId"] == other.id
        listed = me.api.get(
            "/api/data/users", params={"where": json.dumps(both(pair)["users"]["$where"])}
        )
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["total"] == 2 and not body["hasMore"]
        assert by_id(body["data"]) == rows


def test_order_limit_and_cursor(pair):
    alice, bob = pair
    last, first_id = sorted([alice.id, bob.id])
    q = {"$order": {"id": "desc"}, "$limit": 1}
    first = query(alice.api, both(pair, **q))
    assert [r["id"] for r in first["users"]] == [first_id]
    rest = query(alice.api, both(pair, **q, **{"$after": first["$cursors"]["users"]}))
    assert [r["id"] for r in rest["users"]] == [last] and "$cursors" not in rest
    assert [
        r["id"] for r in query(alice.api, {"users": {"$where": {"userId": bob.id}}})["users"]
    ] == [bob.id]


@pytest.mark.parametrize("kind", ["where-other", "where-self", "order", "link"])
def test_naming_email_is_403(pair, kind):
    """Email is not readable on every row, so filtering or sorting on it is refused,
    even by a filter that selects only the caller's own row (field-rule semantics)."""
    alice, bob = pair
    where = {
        "where-other": {"email": bob.email},
        "where-self": {"id": alice.id, "email": alice.email},
    }
    q: dict[str, Any] = {
        "where-other": {"users": {"$where": where["where-other"]}},
        "where-self": {"users": {"$where": where["where-self"]}},
        "order": {"users": {"$order": {"email": "asc"}}},
        "link": {f"todos{secrets.token_hex(3)}s": {"user": {"$where": {"email": bob.email}}}},
    }[kind]
    error = error_of(alice.api.post("/api/query", json=q))
    assert (error["code"], error["message"]) == ("PERMISSION_DENIED", EMAIL_DENIED)
    params = {"order": "email"} if kind == "order" else None
    if kind in where:
        params = {"where": json.dumps(where[kind])}
    if params is not None:
        r = alice.api.get("/api/data/users", params=params)
        assert r.status_code == 403 and error_of(r)["message"] == EMAIL_DENIED


def test_fields_naming_email_is_denied(pair):
    """`$fields` names the field as much as `$where` does: 403, as DESIGN.md says."""
    alice, _ = pair
    error = error_of(alice.api.post("/api/query", json=both(pair, **{"$fields": ["email"]})))
    assert (error["code"], error["message"]) == ("PERMISSION_DENIED", EMAIL_DENIED)
    rows = by_id(query(alice.api, both(pair, **{"$fields": ["id"]}))["users"])
    assert all(set(row) == {"id"} for row in rows.values())


def test_admins_see_every_email(admin, pair, role_admin):
    emails = {a.id: a.email for a in pair}
    for api in (admin, role_admin.api):
        rows = query(api, both(pair, **{"$order": {"email": "asc"}}))["users"]
        assert [r["id"] for r in rows] == sorted(emails, key=emails.__getitem__)
        assert {r["id"]: r["email"] for r in rows} == emails
        found = query(api, {"users": {"$where": {"email": pair[1].email}}})["users"]
        assert [r["id"] for r in found] == [pair[1].id]


def test_links_to_and_from_users(admin, pair):
    alice, bob = pair
    todos = f"todos{secrets.token_hex(3)}s"
    for owner, id in ((alice, "a1"), (bob, "b1")):
        r = owner.api.post(
            "/api/mutate", json={"ops": [{"entity": todos, "id": id, "op": "set", "data": {}}]}
        )
        assert r.status_code == 200, r.text
    forward = query(alice.api, {todos: {"user": {}}})[todos]
    assert [(t["id"], t["user"]["id"], t["user"]["email"]) for t in forward] == [
        ("a1", alice.id, alice.email)
    ]
    reverse = by_id(query(alice.api, both(pair, **{todos: {}}))["users"])
    assert [t["id"] for t in reverse[alice.id][todos]] == ["a1"]
    assert reverse[bob.id][todos] == [] and "email" not in reverse[bob.id]
    everyone = query(admin, {todos: {"user": {}, "$order": {"id": "asc"}}})[todos]
    assert [(t["id"], t["user"]["email"]) for t in everyone] == [
        ("a1", alice.email),
        ("b1", bob.email),
    ]


def test_get_one_user(pair):
    alice, bob = pair
    own = alice.api.get(f"/api/data/users/{alice.id}")
    assert own.status_code == 200, own.text
    assert own.json()["data"]["email"] == alice.email
    other = alice.api.get(f"/api/data/users/{bob.id}")
    assert other.status_code == 200, other.text
    assert other.json()["data"]["id"] == bob.id and "email" not in other.json()["data"]
    assert error_of(alice.api.get("/api/data/users/nobody"))["code"] == "NOT_FOUND"


@pytest.mark.parametrize("who", ["user", "admin"])
def test_writes_are_refused(admin, pair, who):
    alice, _ = pair
    api = alice.api if who == "user" else admin
    attempts = [
        api.post("/api/data/users", json={"email": "x@example.com"}),
        api.patch(f"/api/data/users/{alice.id}", json={"email": "x@example.com"}),
        api.delete(f"/api/data/users/{alice.id}"),
        api.post(
            "/api/mutate",
            json={"ops": [{"entity": "users", "id": alice.id, "op": "merge", "data": {"n": 1}}]},
        ),
    ]
    for r in attempts:
        assert r.status_code == 403, r.text
        error = error_of(r)
        assert (error["code"], error["message"]) == ("PERMISSION_DENIED", WRITE_DENIED)
    assert (
        query(alice.api, {"users": {"$where": {"id": alice.id}}})["users"][0]["email"]
        == alice.email
    )


def test_subscription_gets_q_init_and_no_diffs(server, pair):
    """Accounts change outside the transactor: q-init is right, sign-ups send no diff."""
    alice, bob = pair
    expected = by_id(query(alice.api, {"users": {}})["users"])

    async def go() -> None:
        ws = await WsClient.connect(server.url, alice.access)
        try:
            await ws.send({"type": "subscribe", "id": "u", "query": {"users": {}}})
            rows = by_id((await ws.expect("q-init", id="u"))["data"]["users"])
            assert rows == expected and {alice.id, bob.id} <= set(rows)
            assert rows[alice.id]["email"] == alice.email
            assert [id for id, r in rows.items() if "email" in r] == [alice.id]
            await ws.send(
                {
                    "type": "mutate",
                    "id": "m",
                    "ops": [{"entity": "users", "id": bob.id, "op": "delete"}],
                }
            )
            error = (await ws.expect("mutate-error", id="m"))["error"]
            assert (error["code"], error["message"]) == ("PERMISSION_DENIED", WRITE_DENIED)
            await asyncio.to_thread(signup, Api(server.url))
            assert [m for m in await ws.quiet(0.5) if m.get("type") == "q-diff"] == []
        finally:
            ws.ws.close()

    asyncio.run(go())
