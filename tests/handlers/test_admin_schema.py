"""GET /api/admin/schema over real HTTP on both backends: types, counts, mixed types,
relations, kept right through updates, deletes and failed batches, the migration's
backfill of rows written before it, and the merge with a declared schema."""

from __future__ import annotations

import uuid

from store.query.links import Links, link
from store.schema_stats import describe
from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of


def entity_of(admin, name: str) -> dict | None:
    response = admin.get("/api/admin/schema")
    assert response.status_code == 200, response.text
    found = [e for e in response.json()["entities"] if e["name"] == name]
    return found[0] if found else None


def attrs(entity: dict) -> dict[str, tuple[str, int]]:
    return {a["name"]: (a["type"], a["count"]) for a in entity["attributes"]}


def relations(entity: dict) -> dict[str, tuple[str, int]]:
    return {r["name"]: (r["target"], r["count"]) for r in entity["relations"]}


def test_admin_token_only(server, admin, anon):
    assert error_of(anon.get("/api/admin/schema"))["code"] == "UNAUTHENTICATED"
    user = signup(anon)
    assert error_of(user.api.get("/api/admin/schema"))["code"] == "PERMISSION_DENIED"


def test_types_counts_mixed_and_relations(admin, anon):
    name = "sc_" + uuid.uuid4().hex[:8]
    user = signup(anon)
    rows = [
        {"id": "a", "title": "x", "done": False, "priority": 3, "tags": ["t"], "meta": {}},
        {"id": "b", "title": "y", "done": True, "listId": "l1"},
        {"id": "c", "title": 7, "done": None, "listId": 5},
    ]
    for row in rows:
        assert admin.post(f"/api/data/{name}", json=row).status_code == 201
    assert user.api.post(f"/api/data/{name}", json={"id": "d", "title": "z"}).status_code == 201
    entity = entity_of(admin, name)
    assert entity is not None and entity["count"] == 4
    assert attrs(entity) == {
        "title": ("mixed", 4),
        "done": ("boolean", 2),  # a null is not a value: neither counted nor a type
        "priority": ("number", 1),
        "tags": ("array", 1),
        "meta": ("object", 1),
        "listId": ("mixed", 2),
    }
    # Relations count rows holding an id (a string): listId 5 is not one.
    assert relations(entity) == {"userId": ("users", 1), "listId": ("lists", 1)}

    # Updates move counts between types; a merge with null removes the attribute.
    assert (
        admin.patch(f"/api/data/{name}/c", json={"title": "s", "listId": None}).status_code == 200
    )
    ops = [
        {"entity": name, "id": "a", "op": "merge", "data": {"priority": "high"}},
        {"entity": name, "id": "b", "op": "set", "data": {"title": "y2"}},
    ]
    assert admin.post("/api/mutate", json={"ops": ops}).status_code == 200
    entity = entity_of(admin, name)
    assert attrs(entity) == {
        "title": ("string", 4),
        "done": ("boolean", 1),
        "priority": ("string", 1),
        "tags": ("array", 1),
        "meta": ("object", 1),
    }
    assert relations(entity) == {"userId": ("users", 1)}

    # A batch that fails changes nothing, the counters included.
    bad = [
        {"entity": name, "id": "e", "op": "set", "data": {"extra": 1}},
        {"entity": name, "id": "nope", "op": "delete"},
    ]
    assert admin.post("/api/mutate", json={"ops": bad}).status_code == 404
    assert entity_of(admin, name)["count"] == 4

    for row_id in ("a", "b", "c"):
        assert admin.delete(f"/api/data/{name}/{row_id}").status_code == 204
    entity = entity_of(admin, name)
    assert entity["count"] == 1
    assert attrs(entity) == {"title": ("string", 1)}
    assert user.api.delete(f"/api/data/{name}/d").status_code == 204
    assert entity_of(admin, name) is None


def test_migration_backfills_rows_written_before_it(make_server, backend):
    server = make_server(backend)
    admin = Api(server.url, ADMIN_TOKEN)
    for i, data in enumerate([{"a": 1, "b": "x"}, {"a": "y", "listId": "l"}, {"c": [1]}]):
        assert admin.post("/api/data/things", json={"id": f"t{i}", **data}).status_code == 201
    expected = entity_of(admin, "things")
    assert server.stop() == 0
    # Back to a database as it was before migration 4.
    for statement in ("DROP TABLE ab_schema_stats", "DELETE FROM ab_migrations WHERE version = 4"):
        server.sql(statement)
    server.start()
    assert entity_of(admin, "things") == expected
    assert attrs(expected) == {
        "a": ("mixed", 2),
        "b": ("string", 1),
        "c": ("array", 1),
        "listId": ("string", 1),
    }
    assert relations(expected) == {"listId": ("lists", 1)}


def test_declared_schema_and_links_merge_with_data():
    records = [
        ("todos", "id", "string", 3),
        ("todos", "userId", "string", 3),
        ("todos", "title", "string", 3),
        ("todos", "owner", "string", 2),
        ("todos", "priority", "number", 1),
        ("todos", "priority", "string", 1),
    ]
    links = Links((link("todos.owner", "users", "ownerUser", "ownedTodos"),))
    declared = {"todos": {"priority": "number", "due": "number"}, "tags": {"label": "string"}}
    entities = describe(records, links, declared)
    assert entities == [
        {
            "name": "tags",
            "count": 0,
            "attributes": [{"name": "label", "type": "string", "count": 0}],
            "relations": [],
        },
        {
            "name": "todos",
            "count": 3,
            "attributes": [
                {"name": "due", "type": "number", "count": 0},
                {"name": "owner", "type": "string", "count": 2},
                {"name": "priority", "type": "number", "count": 2},
                {"name": "title", "type": "string", "count": 3},
            ],
            "relations": [
                {"name": "owner", "target": "users", "count": 2},
                {"name": "userId", "target": "users", "count": 3},
            ],
        },
    ]
