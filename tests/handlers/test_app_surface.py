"""The reference app's definition reaches the API surface: /api/query follows its
declared links, /api/admin/schema merges its declared types, and /api/openapi.json
has a typed path per declared entity and per server function."""

from __future__ import annotations

from pathlib import Path

import pytest
from openapi_spec_validator import validate

from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api

TODOS = str(Path(__file__).parents[2] / "examples" / "todos.py")


@pytest.fixture(scope="module")
def app_server(make_module_server, backend):
    return make_module_server(backend, APP=TODOS)


def test_declared_links_work_in_query(app_server):
    user = signup(Api(app_server.url))
    listed = user.api.post("/api/data/lists", json={"name": "Home"}).json()["data"]
    user.api.post("/api/data/todos", json={"title": "Milk", "listId": listed["id"]})
    body = user.api.post("/api/query", json={"lists": {"todos": {}}}).json()
    assert [t["title"] for t in body["lists"][0]["todos"]] == ["Milk"]
    back = user.api.post("/api/query", json={"todos": {"list": {}}}).json()
    assert back["todos"][0]["list"]["name"] == "Home"


def test_schema_merges_declared_types(app_server):
    admin = Api(app_server.url, ADMIN_TOKEN)
    entities = {e["name"]: e for e in admin.get("/api/admin/schema").json()["entities"]}
    lists = {a["name"]: a for a in entities["lists"]["attributes"]}
    assert lists["shared"] == {"name": "shared", "type": "boolean", "count": 0}
    todos = entities["todos"]
    assert {a["name"]: a["type"] for a in todos["attributes"]}["done"] == "boolean"
    assert any(r["name"] == "listId" and r["target"] == "lists" for r in todos["relations"])


def test_openapi_has_the_apps_entities_and_functions(app_server):
    spec = Api(app_server.url).get("/api/openapi.json").json()
    validate(spec)
    assert "/api/data/todos" in spec["paths"] and "/api/data/lists" in spec["paths"]
    assert "/api/fn/createTodo" in spec["paths"]
    todo = spec["components"]["schemas"]["Todo"]
    assert todo["properties"]["title"] == {"type": "string"} and "title" in todo["required"]
    fn_body = spec["paths"]["/api/fn/createTodo"]["post"]["requestBody"]
    schema = fn_body["content"]["application/json"]["schema"]
    assert schema["properties"]["title"]["minLength"] == 1
    assert set(schema["required"]) == {"title", "listId"}
