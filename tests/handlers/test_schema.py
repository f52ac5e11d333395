"""App schemas over real HTTP: types and required attributes (400 with details),
unique attributes settled by the database (one winner, also across two processes on
one PostgreSQL), declared links in queries and live queries, and refusal to start on
a schema or rule set that does not parse."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from pathlib import Path

import pytest

from tests.serverproc import ADMIN_TOKEN, Api, PostgresDatabase, ServerProcess, error_of
from tests.wsclient import WsClient

APP = str(Path(__file__).parents[1] / "apps" / "schema_app.py")


@pytest.fixture(scope="module")
def server(make_module_server, backend):
    return make_module_server(backend, APP=APP)


@pytest.fixture
def admin(server) -> Api:
    return Api(server.url, ADMIN_TOKEN)


def name() -> str:
    return "h-" + uuid.uuid4().hex[:10]


@pytest.mark.parametrize(
    "data, details",
    [
        ({}, [{"field": "name", "message": "Required"}]),
        ({"name": 5}, [{"field": "name", "message": "Expected string, received number"}]),
        (
            {"name": "x", "score": 1.5, "active": "yes"},
            [
                {"field": "score", "message": "Expected integer, received number"},
                {"field": "active", "message": "Expected boolean, received string"},
            ],
        ),
        (
            {"name": "x", "tags": {}, "profile": [], "rating": True},
            [
                {"field": "tags", "message": "Expected array, received object"},
                {"field": "profile", "message": "Expected object, received array"},
                {"field": "rating", "message": "Expected number, received boolean"},
            ],
        ),
    ],
)
def test_writes_that_break_the_schema_are_400_with_details(admin, data, details):
    for response in (
        admin.post("/api/data/handles", json=data),
        admin.post(
            "/api/mutate",
            json={"ops": [{"entity": "handles", "id": name(), "op": "set", "data": data}]},
        ),
    ):
        assert response.status_code == 400, response.text
        error = error_of(response)
        assert error["code"] == "INVALID_ARGUMENT" and error["message"] == "Validation failed"
        assert error["details"] == details


def test_a_merge_is_checked_on_the_row_after_it(admin):
    row = admin.post("/api/data/handles", json={"name": name(), "score": 1}).json()["data"]
    bad = admin.patch(f"/api/data/handles/{row['id']}", json={"name": None})
    assert bad.status_code == 400 and error_of(bad)["details"] == [
        {"field": "name", "message": "Required"}
    ]
    assert admin.patch(f"/api/data/handles/{row['id']}", json={"score": 2}).status_code == 200


def test_valid_rows_and_undeclared_entities_are_accepted(admin):
    ok = admin.post(
        "/api/data/handles",
        json={
            "name": name(),
            "score": 3,
            "tags": ["a"],
            "profile": {"city": "Oslo"},
            "rating": 2.5,
            "extra": 1,
        },
    )
    assert ok.status_code == 201, ok.text
    assert admin.post("/api/data/freeform", json={"anything": [1, {"x": None}]}).status_code == 201


def test_unique_attribute_conflicts(admin):
    taken = name()
    assert admin.post("/api/data/handles", json={"name": taken}).status_code == 201
    again = admin.post("/api/data/handles", json={"name": taken})
    assert again.status_code == 409 and error_of(again)["code"] == "CONFLICT"
    assert "handles.name must be unique" in error_of(again)["message"]
    other = admin.post("/api/data/handles", json={"name": name()}).json()["data"]
    moved = admin.patch(f"/api/data/handles/{other['id']}", json={"name": taken})
    assert moved.status_code == 409
    # Re-saving a row with its own value is no conflict.
    assert admin.patch(f"/api/data/handles/{other['id']}", json={"score": 9}).status_code == 200


def _race(apis: list[Api], value: str, n: int = 12) -> list[int]:
    def create(i: int) -> int:
        return (
            apis[i % len(apis)].post("/api/data/handles", json={"name": value, "i": i}).status_code
        )

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return sorted(pool.map(create, range(n)))


def test_concurrent_creates_with_one_unique_value_have_one_winner(admin):
    value = name()
    assert _race([admin], value) == [201] + [409] * 11
    assert (
        admin.get("/api/data/handles", params={"where": f'{{"name": "{value}"}}'}).json()["total"]
        == 1
    )


def test_unique_race_across_two_processes_on_one_postgres(pg_base_url, tmp_path):
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    db = PostgresDatabase(pg_base_url)
    nodes = [ServerProcess(tmp_path / f"n{i}", db.url, APP=APP) for i in range(2)]
    try:
        for node in nodes:
            node.start()
        apis = [Api(n.url, ADMIN_TOKEN) for n in nodes]
        for _ in range(3):
            value = name()
            statuses = _race(apis, value)
            assert statuses == [201] + [409] * 11, statuses
    finally:
        for node in nodes:
            if node.proc is not None:
                node.stop()
        db.drop()


def test_declared_links_serve_queries_and_live_queries(server, admin):
    author = admin.post("/api/data/handles", json={"name": name()}).json()["data"]
    post = {"title": "t", "writtenBy": author["id"]}
    admin.post("/api/data/posts", json=post)
    query = {"posts": {"$where": {"writtenBy": author["id"]}, "author": {}}}
    rows = admin.post("/api/query", json=query).json()["posts"]
    assert rows[0]["author"]["id"] == author["id"]
    reverse = admin.post(
        "/api/query", json={"handles": {"$where": {"id": author["id"]}, "posts": {}}}
    )
    assert reverse.json()["handles"][0]["posts"][0]["title"] == "t"

    async def live() -> dict:
        ws = await WsClient.connect(server.url, ADMIN_TOKEN)
        try:
            await ws.send({"type": "subscribe", "id": "s", "query": query})
            return await ws.expect("q-init")
        finally:
            ws.close()

    assert asyncio.run(live())["data"]["posts"][0]["author"]["id"] == author["id"]


@pytest.mark.parametrize(
    "source, mistake",
    [
        (
            'rules = {"todos": {"read": {"priority": {"$gt": [1]}}}}',
            "rules.todos.read.priority.$gt: must be a number or a string",
        ),
        (
            'rules = {"todos": {"read": {"userId": "$auth.nope"}}}',
            "rules.todos.read.userId: unknown reference '$auth.nope'",
        ),
        ('rules = {"todos": {"raed": True}}', "rules.todos.raed: unknown"),
        (
            'schema = {"todos": {"attributes": {"t": {"type": "text"}}}}',
            "schema.todos.attributes.t.type: must be one of",
        ),
        ("def f(ctx, x):\n    pass\nfunctions = [f]", "functions.f.x: needs a type hint"),
    ],
)
def test_an_app_that_does_not_parse_stops_the_server_at_start(
    make_server, tmp_path, source, mistake
):
    app = tmp_path / "bad_app.py"
    app.write_text(source + "\n")
    server = make_server("sqlite", start=False, APP=str(app))
    with pytest.raises(RuntimeError):
        server.start(timeout=20)
    lines = [line for line in server.log().splitlines() if line.startswith("actorbase: APP")]
    assert len(lines) == 1 and mistake in lines[0], server.log()
