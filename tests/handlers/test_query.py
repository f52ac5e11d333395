"""POST /api/query over real HTTP on both backends: operators, ordering, paging,
links, projection, limits, errors and permission filtering."""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any

import pytest

from tests.serverproc import Api, error_of

_entities = itertools.count()


def _entity(prefix: str) -> str:
    """A fresh plural entity name (ends in "s", so the link naming convention applies)."""
    return f"{prefix}{next(_entities)}_{secrets.token_hex(3)}s"


def seed(api: Api, entity: str, rows: list[dict[str, Any]]) -> int:
    """Create rows (each with an "id"; "userId" sets the owner, admin only)."""
    ops = [
        {
            "entity": entity,
            "id": r["id"],
            "op": "set",
            "data": {k: v for k, v in r.items() if k != "id"},
        }
        for r in rows
    ]
    resp = api.post("/api/mutate", json={"ops": ops})
    assert resp.status_code == 200, resp.text
    return resp.json()["tx"]


def query(api: Api, body: Any) -> dict[str, Any]:
    resp = api.post("/api/query", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]


def test_seed_example_shape(admin):
    todos = _entity("todos")
    tx = seed(
        admin,
        todos,
        [{"id": f"t{i}", "title": f"T{i}", "done": i == 2, "priority": i} for i in range(4)],
    )
    body = query(
        admin, {todos: {"$where": {"done": False}, "$order": {"createdAt": "desc"}, "$limit": 20}}
    )
    assert set(body) == {todos, "tx"}
    assert body["tx"] >= tx
    assert sorted(ids(body[todos])) == ["t0", "t1", "t3"]
    first = body[todos][0]
    assert {"id", "title", "done", "priority", "createdAt", "updatedAt", "userId"} <= set(first)
    stamps = [r["createdAt"] for r in body[todos]]
    assert stamps == sorted(stamps, reverse=True)


ROWS = [
    {"id": "a", "n": 1, "s": "apple", "b": True, "tags": ["x", "y"], "addr": {"city": "Oslo"}},
    {"id": "b", "n": 2.5, "s": "Banana", "b": False, "tags": ["y"], "addr": {"city": "Rome"}},
    {"id": "c", "n": "3", "s": "cherry", "tags": [], "addr": {"city": "oslo", "zip": "0150"}},
    {"id": "d", "n": 10, "s": "50%_off", "b": True},
    {"id": "e", "s": "Äpfel", "nested": {"deep": {"x": 1}}},
]

OPERATOR_CASES = [
    ({"n": 1}, ["a"]),
    ({"n": 1.0}, ["a"]),
    ({"n": "3"}, ["c"]),
    ({"b": True}, ["a", "d"]),
    ({"b": False}, ["b"]),
    ({"b": None}, ["c", "e"]),
    ({"tags": ["x", "y"]}, ["a"]),
    ({"tags": ["y", "x"]}, []),
    ({"addr": {"city": "Oslo"}}, ["a"]),
    ({"addr.city": "Oslo"}, ["a"]),
    ({"nested.deep.x": 1}, ["e"]),
    ({"n": {"$ne": 1}}, ["b", "c", "d", "e"]),
    ({"n": {"$gt": 2}}, ["b", "d"]),
    ({"n": {"$gte": 2.5}}, ["b", "d"]),
    ({"n": {"$lt": 10}}, ["a", "b"]),
    ({"n": {"$lte": 10, "$gt": 1}}, ["b", "d"]),
    ({"n": {"$gt": "2"}}, ["c"]),
    ({"s": {"$gt": "b"}}, ["c", "e"]),
    ({"s": {"$lt": "a"}}, ["b", "d"]),
    ({"n": {"$in": [1, "3", None]}}, ["a", "c", "e"]),
    ({"n": {"$nin": [1, 10]}}, ["b", "c", "e"]),
    ({"s": {"$like": "%an%"}}, ["b"]),
    ({"s": {"$like": "b%"}}, []),
    ({"s": {"$ilike": "b%"}}, ["b"]),
    ({"s": {"$like": "50\\%\\_off"}}, ["d"]),
    ({"s": {"$like": "_pple"}}, ["a"]),
    ({"s": {"$ilike": "äpfel"}}, []),
    ({"addr.city": {"$ilike": "OSLO"}}, ["a", "c"]),
    ({"addr.zip": {"$exists": True}}, ["c"]),
    ({"b": {"$exists": False}}, ["c", "e"]),
    ({"b": {"$isNull": True}}, ["c", "e"]),
    ({"b": {"$isNull": False}}, ["a", "b", "d"]),
    ({"$or": [{"n": 1}, {"s": "cherry"}]}, ["a", "c"]),
    ({"$and": [{"b": True}, {"n": {"$gt": 5}}]}, ["d"]),
    ({"$not": {"b": True}}, ["b", "c", "e"]),
    ({"n": {"$not": {"$gt": 2}}}, ["a", "c", "e"]),
    ({"id": {"$in": ["a", "e"]}}, ["a", "e"]),
    ({"id": {"$gt": "c"}}, ["d", "e"]),
    ({"userId": None}, ["a", "b", "c", "d", "e"]),
    ({"createdAt": {"$gt": 0}}, ["a", "b", "c", "d", "e"]),
    ({"createdAt": {"$gt": "0"}}, []),
]


@pytest.fixture(scope="module")
def mixed(server) -> str:
    entity = _entity("mixed")
    seed(Api(server.url, __import__("tests.serverproc").serverproc.ADMIN_TOKEN), entity, ROWS)
    return entity


@pytest.mark.parametrize(("where", "expected"), OPERATOR_CASES, ids=lambda v: json.dumps(v))
def test_operators(admin, mixed, where, expected):
    body = query(admin, {mixed: {"$where": where}})
    assert sorted(ids(body[mixed])) == expected


def test_where_of_data_list_uses_the_same_language(admin, mixed):
    resp = admin.get(f"/api/data/{mixed}", params={"where": json.dumps({"n": {"$gt": 2}})})
    assert resp.status_code == 200, resp.text
    assert sorted(ids(resp.json()["data"])) == ["b", "d"]
    bad = admin.get(f"/api/data/{mixed}", params={"where": json.dumps({"n": {"$gtx": 2}})})
    error = error_of(bad)
    assert error["code"] == "INVALID_ARGUMENT"
    assert "where.n.$gtx" in error["message"]


def test_mixed_type_order_is_by_type_rank(admin, mixed):
    body = query(admin, {mixed: {"$order": {"n": "asc"}}})
    # missing < numbers (1 < 2.5 < 10) < strings
    assert ids(body[mixed]) == ["e", "a", "b", "d", "c"]
    body = query(admin, {mixed: {"$order": {"n": "desc"}}})
    assert ids(body[mixed]) == ["c", "d", "b", "a", "e"]
    body = query(admin, {mixed: {"$order": {"b": "desc", "s": "asc"}}})
    assert ids(body[mixed]) == ["d", "a", "b", "c", "e"]
    body = query(admin, {mixed: {"$order": {"s": "asc"}}})
    assert ids(body[mixed]) == ["d", "b", "a", "c", "e"]  # code point order: "5" < "B" < "a" < "Ä"


def test_projection_keeps_id(admin, mixed):
    body = query(admin, {mixed: {"$fields": ["s", "createdAt"], "$where": {"id": "a"}}})
    assert body[mixed] == [{"id": "a", "s": "apple", "createdAt": body[mixed][0]["createdAt"]}]


def test_offset_pages(admin):
    entity = _entity("pages")
    seed(admin, entity, [{"id": f"r{i:02d}", "k": i} for i in range(10)])
    got = []
    for offset in range(0, 10, 4):
        body = query(admin, {entity: {"$order": {"k": "asc"}, "$limit": 4, "$offset": offset}})
        got += ids(body[entity])
    assert got == [f"r{i:02d}" for i in range(10)]


def test_cursor_pages_survive_inserts(admin):
    entity = _entity("cursor")
    seed(admin, entity, [{"id": f"r{i:02d}", "k": i * 10} for i in range(6)])
    q = {"$order": {"k": "desc"}, "$limit": 2}
    first = query(admin, {entity: q})
    assert ids(first[entity]) == ["r05", "r04"]
    cursor = first["$cursors"][entity]
    # Inserted before and after the cursor position: neither shifts the next page.
    seed(admin, entity, [{"id": "new_top", "k": 100}, {"id": "new_mid", "k": 25}])
    second = query(admin, {entity: {**q, "$after": cursor}})
    assert ids(second[entity]) == ["r03", "new_mid"]
    third = query(admin, {entity: {**q, "$after": second["$cursors"][entity]}})
    assert ids(third[entity]) == ["r02", "r01"]
    last = query(admin, {entity: {**q, "$after": third["$cursors"][entity]}})
    assert ids(last[entity]) == ["r00"]
    assert "$cursors" not in last


def test_cursor_is_bound_to_its_query(admin):
    entity = _entity("cursor")
    seed(admin, entity, [{"id": f"r{i}", "k": i} for i in range(3)])
    token = query(admin, {entity: {"$limit": 1}})["$cursors"][entity]
    for bad in (token, "garbage!", "eyJ4Ijox"):
        resp = admin.post(
            "/api/query", json={entity: {"$order": {"k": "desc"}, "$after": bad, "$limit": 1}}
        )
        error = error_of(resp)
        assert error["code"] == "INVALID_ARGUMENT"
        assert f"{entity}.$after" in error["message"]


def test_links_both_ways_with_nested_limits(admin):
    lists, todos = _entity("lists"), _entity("todos")
    # No declared links: the reverse link from lists to todos follows todos.<list>Id.
    field = lists[:-1] + "Id"
    seed(admin, lists, [{"id": "L1", "name": "one"}, {"id": "L2", "name": "two"}])
    seed(
        admin,
        todos,
        [{"id": f"t{i}", field: "L1", "done": i % 2 == 0, "rank": i} for i in range(6)]
        + [{"id": "u1", field: "L2", "done": False, "rank": 0}],
    )
    body = query(
        admin,
        {
            lists: {
                "$order": {"name": "asc"},
                todos: {"$where": {"done": False}, "$order": {"rank": "desc"}, "$limit": 2},
            }
        },
    )
    assert [(row["id"], ids(row[todos])) for row in body[lists]] == [
        ("L1", ["t5", "t3"]),
        ("L2", ["u1"]),
    ]
    singular = lists[:-1]
    forward = query(admin, {todos: {"$where": {"id": "t1"}, singular: {"$fields": ["name"]}}})
    assert forward[todos][0][singular] == {"id": "L1", "name": "one"}
    offset = query(admin, {lists: {"$where": {"id": "L1"}, todos: {"$offset": 4, "$limit": 5}}})
    assert ids(offset[lists][0][todos]) == ["t4", "t5"]


def test_user_link_through_user_id(server, admin):
    """`users` rows are accounts (see test_users_entity.py): a userId links to one."""
    _, ann = _signup(server)
    users, todos = "users", _entity("todos")
    seed(admin, todos, [{"id": "x1", "userId": ann}, {"id": "x2", "userId": "usr_other"}])
    body = query(admin, {todos: {"user": {}, "$order": {"id": "asc"}}})
    assert [r["user"] and r["user"]["id"] for r in body[todos]] == [ann, None]
    nested = query(admin, {users: {"$where": {"id": ann}, todos: {}}})
    assert ids(nested[users][0][todos]) == ["x1"]


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        ({"$limit": 1001}, "$limit"),
        ({"a": {"b": {"c": {"d": {}}}}}, "QUERY_MAX_DEPTH"),
        ({"$where": {"$or": [{"x": i} for i in range(250)]}}, "QUERY_MAX_OPERATORS"),
        ({"$limit": 1000, "items": {"$limit": 100}}, "QUERY_MAX_ROWS"),
    ],
)
def test_limits(admin, body, limit):
    error = error_of(admin.post("/api/query", json={"things": body}))
    assert error["code"] == "QUERY_TOO_COMPLEX"
    assert limit in error["message"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ([1, 2], "query"),
        ({"Bad-Name": {}}, "Bad-Name"),
        ({"tx": {}}, "tx"),
        ({"things": []}, "things"),
        ({"things": {"$where": {"n": {"$bogus": 1}}}}, "things.$where.n.$bogus"),
        ({"things": {"$where": {"n": {"$gt": True}}}}, "things.$where.n.$gt"),
        ({"things": {"$where": {"n": {"$in": 3}}}}, "things.$where.n.$in"),
        ({"things": {"$where": {"n": {"$like": 3}}}}, "things.$where.n.$like"),
        ({"things": {"$where": {"n": {"$exists": "yes"}}}}, "things.$where.n.$exists"),
        ({"things": {"$where": {"$or": {}}}}, "things.$where.$or"),
        ({"things": {"$where": {"a..b": 1}}}, "things.$where.a..b"),
        ({"things": {"$where": {"n": {"$gt": 1, "x": 2}}}}, "things.$where.n"),
        ({"things": {"$where": []}}, "things.$where"),
        ({"things": {"$order": {"n": "up"}}}, "things.$order.n"),
        ({"things": {"$limit": 0}}, "things.$limit"),
        ({"things": {"$limit": "5"}}, "things.$limit"),
        ({"things": {"$offset": -1}}, "things.$offset"),
        ({"things": {"$fields": ["a.b"]}}, "things.$fields[0]"),
        ({"things": {"$bogus": 1}}, "things.$bogus"),
        ({"things": {"Not-A-Link": {}}}, "things.Not-A-Link"),
        ({"things": {"item": {"$limit": 3}}}, "things.item"),
        ({"things": {"subs": {"$after": "x"}}}, "things.subs.$after"),
    ],
)
def test_malformed_queries_name_the_path(admin, body, path):
    error = error_of(admin.post("/api/query", json=body))
    assert error["code"] == "INVALID_ARGUMENT", error
    assert path in error["message"], error


def test_requires_auth(anon):
    assert error_of(anon.post("/api/query", json={"things": {}}))["code"] == "UNAUTHENTICATED"


def _signup(server) -> tuple[Api, str]:
    email = f"q{secrets.token_hex(6)}@example.com"
    resp = Api(server.url).post(
        "/api/auth/signup", json={"email": email, "password": "Correct-Horse-9"}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return Api(server.url, body["accessToken"]), body["user"]["id"]


def test_permissions_filter_every_level(server, admin):
    alice, alice_id = _signup(server)
    bob, bob_id = _signup(server)
    projects, tasks = _entity("projects"), _entity("tasks")
    field = projects[:-1] + "Id"
    seed(
        admin,
        projects,
        [{"id": "p_a", "userId": alice_id}, {"id": "p_b", "userId": bob_id}],
    )
    seed(
        admin,
        tasks,
        [{"id": f"ta{i}", field: "p_a", "userId": alice_id, "i": i} for i in range(3)]
        + [{"id": f"tb{i}", field: "p_a", "userId": bob_id, "i": i} for i in range(3)]
        + [{"id": "tx0", field: "p_a", "userId": "usr_a", "i": 9}],
    )
    mine = query(alice, {projects: {tasks: {"$order": {"i": "asc"}, "$limit": 2}}})
    assert ids(mine[projects]) == ["p_a"]
    assert ids(mine[projects][0][tasks]) == ["ta0", "ta1"]
    page = query(alice, {tasks: {"$order": {"i": "asc"}, "$limit": 2}})
    assert ids(page[tasks]) == ["ta0", "ta1"]
    rest = query(alice, {tasks: {"$order": {"i": "asc"}, "$after": page["$cursors"][tasks]}})
    assert ids(rest[tasks]) == ["ta2"]
    assert "$cursors" not in rest
    assert ids(query(bob, {projects: {}})[projects]) == ["p_b"]
    forward = query(bob, {tasks: {projects[:-1]: {}}})
    assert [(r["id"], r[projects[:-1]]) for r in forward[tasks]] == [
        ("tb0", None),
        ("tb1", None),
        ("tb2", None),
    ]
    everything = query(admin, {tasks: {}})
    assert len(everything[tasks]) == 7
