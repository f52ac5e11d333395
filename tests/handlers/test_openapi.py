"""GET /api/openapi.json: a valid OpenAPI 3.1 document that matches the route table
exactly, typed paths for declared entities and functions, and /api/docs' files."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest
import tornado.routing
import tornado.web
from openapi_spec_validator import validate

from actorbase.context import Context
from config.settings import load
from handlers.cors import handler_methods
from handlers.openapi import document, path_template
from handlers.routes import make_app
from tests.serverproc import ADMIN_TOKEN, Api


@pytest.fixture(scope="module")
def server(make_module_server):
    """The document does not touch the store: one SQLite server is enough."""
    return make_module_server("sqlite")


@pytest.fixture(scope="module")
def spec(server) -> dict:
    response = Api(server.url).get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def route_rules() -> list[tornado.routing.Rule]:
    # The route table only hands the context to handlers: no service is needed to list it.
    none = cast(Any, None)
    ctx = Context(load({}), none, none, none, none, "", none, none)
    app = make_app(ctx)
    return [
        r for r in app.wildcard_router.rules if isinstance(r.matcher, tornado.routing.PathMatches)
    ]


def test_is_valid_openapi_3_1(spec):
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == schemes["adminToken"]["scheme"] == "bearer"
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]


def test_every_route_and_method_is_documented_and_nothing_else(spec):
    documented = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete", "head"}
    }
    routed: set[tuple[str, str]] = set()
    for rule in route_rules():
        regex = rule.matcher.regex
        # A sample URL of the route, matched against the documented template.
        sample = re.sub(r"\((?:[^()\\]|\\.)*\)", "x", regex.pattern.removesuffix("$"))
        sample = sample.removesuffix("/?").replace("\\", "")
        assert regex.match(sample), sample
        templates = [p for p in spec["paths"] if re.sub(r"\{[^}]+\}", "x", p) == sample]
        assert len(templates) == 1, (sample, templates)
        for method in handler_methods(rule.target):
            routed.add((templates[0], method))
    assert routed == documented


def test_paths_are_named_from_the_handlers(spec):
    assert "/api/data/{entity}/{id}" in spec["paths"]
    assert "/api/storage/{path}" in spec["paths"]
    assert "/api/auth/sessions/{session_id}" in spec["paths"]
    assert "/api/storage" in spec["paths"]
    for path, item in spec["paths"].items():
        for name in re.findall(r"\{([^}]+)\}", path):
            for op in item.values():
                assert name in {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    assert path_template(r"/api/data/([^/]+)/([^/]+)", ["entity", "id"]) == (
        "/api/data/{entity}/{id}"
    )


def test_security_request_bodies_and_errors(spec):
    paths = spec["paths"]
    assert paths["/api/admin/stats"]["get"]["security"] == [{"adminToken": []}]
    assert paths["/api/admin/health"]["get"]["security"] == []
    assert {"bearerAuth": []} in paths["/api/query"]["post"]["security"]
    signup = paths["/api/auth/signup"]["post"]
    assert signup["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Credentials"
    }
    assert "201" in signup["responses"]
    upload = paths["/api/storage/upload"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    for item in paths.values():
        for op in item.values():
            assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
    headers = paths["/api/query"]["post"]["responses"]["200"]["headers"]
    assert set(headers) == {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}


def test_declared_entities_and_functions_get_typed_paths():
    todo = {
        "type": "object",
        "properties": {"title": {"type": "string", "minLength": 1}, "done": {"type": "boolean"}},
        "required": ["title"],
    }
    args = {"type": "object", "properties": {"title": {"type": "string"}}}
    app = tornado.web.Application([])
    spec = document(app, entities={"todos": todo}, functions={"createTodo": args})
    validate(spec)
    assert spec["components"]["schemas"]["Todo"] == todo
    listed = spec["paths"]["/api/data/todos"]["get"]["responses"]["200"]["content"]
    items = listed["application/json"]["schema"]["properties"]["data"]["items"]
    assert {"$ref": "#/components/schemas/Todo"} in items["allOf"]
    assert set(spec["paths"]["/api/data/todos/{id}"]) == {"get", "patch", "delete"}
    body = spec["paths"]["/api/fn/createTodo"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == args


def test_docs_page_and_local_assets(server):
    api = Api(server.url)
    page = api.get("/api/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "/api/openapi.json" in page.text and "http" not in page.text  # no CDN
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        response = api.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 1000
    missing = api.get("/api/docs/missing.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    assert api.get("/api/docs/..%2F..%2Fsetup.cfg").status_code == 404


def test_undocumented_methods_answer_not_found_in_the_error_format(server, spec):
    # Found by schemathesis: PUT to the streaming upload route used to answer 400
    # mid-body and then fail to send Tornado's 405 (an ERROR in the log).
    admin = Api(server.url, ADMIN_TOKEN)
    for path, method in [
        ("/api/storage/upload", "PUT"),
        ("/api/storage/upload", "PATCH"),
        ("/api/query", "DELETE"),
        ("/api/admin/stats", "POST"),
    ]:
        assert method.lower() not in spec["paths"][path]
        response = admin.request(method, path, data=b"x")
        assert response.status_code == 404, (path, method)
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert "Cannot send error response" not in server.log()
