"""Server functions over real HTTP, on both backends: the seed's shape and
validation wording (examples/todos.py), errors, serializable retries under
concurrency, and each limit answered while other requests keep being served."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from pathlib import Path

import pytest

from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of

ROOT = Path(__file__).parents[2]
TODOS = str(ROOT / "examples" / "todos.py")
FN_APP = str(ROOT / "tests" / "apps" / "fn_app.py")


@pytest.fixture(scope="module")
def todos(make_module_server, backend):
    return make_module_server(backend, APP=TODOS)


@pytest.fixture(scope="module")
def fns(make_module_server, backend):
    return make_module_server(
        backend,
        APP=FN_APP,
        FUNCTION_WORKERS=2,
        FUNCTION_CPU_SECONDS=0.5,
        FUNCTION_WALL_SECONDS=2,
        FUNCTION_MEMORY_MB=128,
        QUERY_MAX_OPERATORS=3,
    )


# -- the seed, with the reference app -------------------------------------------------------


def test_create_todo_returns_the_new_id_and_tx(todos):
    user = signup(Api(todos.url))
    lst = user.api.post("/api/data/lists", json={"name": "Groceries"}).json()["data"]
    r = user.api.post("/api/fn/createTodo", json={"title": "Buy milk", "listId": lst["id"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"result", "tx"} and isinstance(body["tx"], int)
    row = user.api.get(f"/api/data/todos/{body['result']}").json()["data"]
    assert row["title"] == "Buy milk" and row["userId"] == user.id and row["listId"] == lst["id"]
    assert user.api.get(f"/api/data/todos/{body['result']}").status_code == 200


def test_validation_failure_is_worded_as_the_seed(todos):
    user = signup(Api(todos.url))
    r = user.api.post("/api/fn/createTodo", json={"title": "", "listId": "list-1"})
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "code": "INVALID_ARGUMENT",
            "message": "Validation failed",
            "status": 400,
            "details": [{"field": "title", "message": "String must be at least 1 character"}],
        }
    }
    missing = user.api.post("/api/fn/createTodo", json={"title": 5})
    assert error_of(missing)["details"] == [
        {"field": "title", "message": "Expected string, received number"},
        {"field": "listId", "message": "Required"},
    ]


def test_function_error_and_rules_inside_functions(todos):
    alice, bob = signup(Api(todos.url)), signup(Api(todos.url))
    lst = alice.api.post("/api/data/lists", json={"name": "Mine"}).json()["data"]
    r = bob.api.post("/api/fn/createTodo", json={"title": "x", "listId": lst["id"]})
    assert r.status_code == 404 and error_of(r)["message"] == f"No list {lst['id']}"


def test_shared_lists_are_readable_within_an_organization(todos):
    admin = Api(todos.url, ADMIN_TOKEN)
    anon = Api(todos.url)
    org = "org-" + uuid.uuid4().hex[:6]
    accounts = [signup(anon) for _ in range(3)]
    for account, claims in zip(
        accounts, ({"organizationId": org}, {"organizationId": org}, {}), strict=True
    ):
        admin.patch(f"/api/admin/users/{account.id}", json={"claims": claims})
    owner, colleague, outsider = (
        Api(
            todos.url,
            anon.post("/api/auth/refresh", json={"refreshToken": a.refresh}).json()["accessToken"],
        )
        for a in accounts
    )
    shared = owner.post(
        "/api/data/lists", json={"name": "S", "organizationId": org, "shared": True}
    )
    private = owner.post("/api/data/lists", json={"name": "P", "organizationId": org})
    ids = {shared.json()["data"]["id"], private.json()["data"]["id"]}
    seen = {r["id"] for r in colleague.get("/api/data/lists").json()["data"]}
    assert seen & ids == {shared.json()["data"]["id"]}
    assert {r["id"] for r in outsider.get("/api/data/lists").json()["data"]} & ids == set()
    denied = colleague.patch(
        f"/api/data/lists/{shared.json()['data']['id']}", json={"name": "mine"}
    )
    assert denied.status_code == 403


def test_unknown_function_and_bad_bodies(todos):
    user = signup(Api(todos.url))
    assert error_of(user.api.post("/api/fn/nope", json={}))["code"] == "NOT_FOUND"
    assert user.api.post("/api/fn/createTodo", json=[1]).status_code == 400
    assert (
        user.api.post(
            "/api/fn/createTodo", data="{", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert Api(todos.url).post("/api/fn/createTodo", json={}).status_code == 401


# -- errors, retries, limits ------------------------------------------------------------------


def test_function_errors_map_to_their_codes(fns):
    admin = Api(fns.url, ADMIN_TOKEN)
    for code, status in (("NOT_FOUND", 404), ("PERMISSION_DENIED", 403), ("CONFLICT", 409)):
        r = admin.post("/api/fn/refuse", json={"code": code})
        assert (r.status_code, error_of(r)["code"]) == (status, code)
        assert error_of(r)["message"] == f"Refused with {code}"
    for name in ("boom", "bad_result"):
        r = admin.post(f"/api/fn/{name}", json={})
        assert r.status_code == 500
        assert error_of(r) == {
            "code": "INTERNAL",
            "message": "Internal server error",
            "status": 500,
        }
    assert "secret internals" in fns.log()  # the traceback goes to the log only


def test_concurrent_increments_are_serializable(fns):
    counter = uuid.uuid4().hex
    apis = [Api(fns.url, ADMIN_TOKEN) for _ in range(20)]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(
            pool.map(lambda api: api.post("/api/fn/increment", json={"id": counter}), apis)
        )
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    assert sorted(r.json()["result"] for r in results) == list(range(1, 21))
    row = Api(fns.url, ADMIN_TOKEN).get(f"/api/data/counters/{counter}").json()["data"]
    assert row["value"] == 20


@pytest.mark.parametrize(
    "name, args, code",
    [
        ("spin", {}, "RESOURCE_EXCEEDED"),
        ("spin_stubbornly", {}, "RESOURCE_EXCEEDED"),
        ("sleep", {"seconds": 30}, "RESOURCE_EXCEEDED"),
        ("allocate", {"mib": 1024}, "RESOURCE_EXCEEDED"),
        ("crash", {}, "INTERNAL"),
    ],
)
def test_a_runaway_function_is_stopped_while_others_are_served(fns, name, args, code):
    admin = Api(fns.url, ADMIN_TOKEN)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        runaway = pool.submit(admin.post, f"/api/fn/{name}", json=args)
        time.sleep(0.2)
        # Meanwhile: plain requests, and functions on the other worker, are answered.
        # (No clock: a busy machine stretches every answer; a blocked loop or pool would
        # fail these with a timeout or an error instead.)
        for _ in range(5):
            assert Api(fns.url).get("/api/admin/health").status_code == 200
            echo = Api(fns.url, ADMIN_TOKEN).post("/api/fn/echo", json={"title": "hi"})
            assert echo.status_code == 200 and echo.json()["result"]["title"] == "hi"
        r = runaway.result()
    assert error_of(r)["code"] == code, r.text
    # The worker was replaced: calls keep working on a full pool.
    for _ in range(4):
        assert (
            Api(fns.url, ADMIN_TOKEN).post("/api/fn/allocate", json={"mib": 16}).status_code == 200
        )


def test_functions_see_the_caller(fns):
    user = signup(Api(fns.url))
    r = user.api.post("/api/fn/echo", json={"title": "hi", "count": 2, "tags": ["a"]})
    assert r.json()["result"] == {"title": "hi", "count": 2, "tags": ["a"], "me": user.id}


def test_function_queries_keep_the_servers_query_limits(fns):
    """QUERY_MAX_OPERATORS=3 bounds a function's ctx.db.query as it bounds /api/query."""
    admin = Api(fns.url, ADMIN_TOKEN)
    small = {"limited": {"$where": {"a": 1, "b": 2}}}
    large = {"limited": {"$where": {"a": 1, "b": 2, "c": 3, "d": 4}}}
    r = admin.post("/api/fn/run_query", json={"query": small})
    assert r.status_code == 200 and r.json()["result"]["limited"] == []
    direct = admin.post("/api/query", json=large)
    r = admin.post("/api/fn/run_query", json={"query": large})
    assert direct.status_code == r.status_code == 400
    assert error_of(r)["code"] == error_of(direct)["code"] == "QUERY_TOO_COMPLEX"
