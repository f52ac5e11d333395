"""GET /metrics over real HTTP on both backends, read with prometheus_client's own
parser: who may scrape, and figures that move by exactly what the test did."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import requests
from prometheus_client.parser import text_string_to_metric_families

from actorbase.context import Context
from actorbase.metrics import ROUTE_CLASSES, route_class
from config.settings import load
from handlers.routes import make_app
from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of
from tests.wsclient import RawWs, SseClient, WsClient

METRICS_TOKEN = "metrics-scraper-token-" + "m" * 32

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: Api) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def eventually(api: Api, check: Callable[[Samples], bool], within: float = 10) -> Samples:
    """Scrape until `check` holds (data figures are cached for a second, sockets close
    asynchronously); the last scrape, which must satisfy it."""
    deadline = time.monotonic() + within
    while True:
        samples = scrape(api)
        if check(samples) or time.monotonic() > deadline:
            assert check(samples), {k: v for k, v in samples.items() if k[0].startswith("actor")}
            return samples
        time.sleep(0.1)


def entity() -> str:
    return "mt_" + uuid.uuid4().hex[:8]


def requests_of(samples: Samples, route: str, method: str, code: str) -> float:
    return value(samples, "actorbase_http_requests_total", route=route, method=method, code=code)


def test_scrape_needs_the_admin_token(server, admin, anon):
    for api in (anon, anon.with_token("wrong-" + "x" * 40), signup(anon).api):
        error = error_of(api.get("/metrics"))
        assert (error["code"], error["status"]) == ("UNAUTHENTICATED", 401)
    samples = scrape(admin)
    assert value(samples, "actorbase_build_info", version="0.1.0", backend=server_backend(server))
    # Unset, METRICS_TOKEN opens nothing.
    assert anon.with_token(METRICS_TOKEN).get("/metrics").status_code == 401


def server_backend(server) -> str:
    return "sqlite" if server.database_url.startswith("sqlite") else "postgresql"


def test_metrics_token_scrapes_and_opens_nothing_else(make_server, backend):
    server = make_server(backend, METRICS_TOKEN=METRICS_TOKEN)
    scraper = Api(server.url, METRICS_TOKEN)
    assert value(scrape(scraper), "actorbase_writer_queue_length") == 0
    assert value(scrape(Api(server.url, ADMIN_TOKEN)), "actorbase_writer_queue_length") == 0
    for path in ("/api/admin/stats", "/api/data/todos"):
        assert error_of(scraper.get(path))["code"] == "UNAUTHENTICATED"
    assert Api(server.url, METRICS_TOKEN[:-1]).get("/metrics").status_code == 401


def test_requests_are_counted_by_route_class_and_code(admin):
    ent = entity()
    before = scrape(admin)
    for i in range(4):
        assert admin.post(f"/api/data/{ent}", json={"id": f"r{i}"}).status_code == 201
    for _ in range(3):
        assert admin.get(f"/api/data/{ent}/missing").status_code == 404
    for _ in range(2):
        assert admin.post("/api/query", json={ent: {}}).status_code == 200
    after = scrape(admin)
    moved = {
        key: requests_of(after, *key) - requests_of(before, *key)
        for key in (("data", "POST", "201"), ("data", "GET", "404"), ("query", "POST", "200"))
    }
    assert moved == {
        ("data", "POST", "201"): 4,
        ("data", "GET", "404"): 3,
        ("query", "POST", "200"): 2,
    }
    latency = (
        "actorbase_http_request_duration_seconds_count",
        frozenset({("route", "data"), ("method", "POST")}),
    )
    assert after[latency] - before.get(latency, 0) == 4


def test_random_paths_add_no_label_values(admin, anon):
    def series(samples: Samples) -> set[frozenset[tuple[str, str]]]:
        return {labels for name, labels in samples if name == "actorbase_http_requests_total"}

    def noise() -> None:
        for _ in range(10):
            word = uuid.uuid4().hex
            assert anon.get(f"/{word}/{word}").status_code == 404
            assert admin.get(f"/api/data/{entity()}/{word}").status_code == 404
            assert anon.request(word[:6].upper(), f"/api/{word}").status_code in {404, 405}

    scrape(admin)  # a scrape is counted once answered: its own series exists from now on
    noise()
    first = series(scrape(admin))
    noise()
    second = series(scrape(admin))
    assert first == second  # the same requests again: no new series
    routes = set(ROUTE_CLASSES.values()) | {"unmatched", "other"}
    for labels in second:
        label = dict(labels)
        assert label["route"] in routes, label
        assert label["method"] in {
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
            "OPTIONS",
            "OTHER",
        }
        assert label["code"].isdigit()


def test_every_route_has_a_route_class():
    none = cast(Any, None)
    app = make_app(Context(load({}), none, none, none, none, "", none, none))
    classes = {route_class(rule.target) for rule in app.wildcard_router.rules}
    assert "other" not in classes and "unmatched" not in classes
    assert {"data", "query", "mutate", "auth", "storage", "ws", "sse", "metrics"} <= classes


def test_writer_figures(server, admin):
    ent = entity()
    before = scrape(admin)
    ops = [{"entity": ent, "id": f"m{i}", "op": "set", "data": {"i": i}} for i in range(3)]
    for op in ops:
        assert admin.post("/api/mutate", json={"ops": [op]}).status_code == 200
    tx = admin.post(f"/api/data/{ent}", json={"id": "last"}).json()["tx"]
    assert admin.delete(f"/api/data/{ent}/missing").status_code == 404
    after = eventually(admin, lambda s: value(s, "actorbase_last_tx") >= tx)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("actorbase_tx_committed_total") == 4
    assert moved("actorbase_mutations_failed_total", code="NOT_FOUND") == 1
    assert moved("actorbase_mutation_duration_seconds_count") == 4
    # Every mutation sits in exactly one group, failed ones included.
    assert moved("actorbase_commit_group_size_sum") == 5
    assert 1 <= moved("actorbase_commit_group_size_count") <= 5
    assert (
        value(after, "actorbase_last_tx")
        == server.sql("SELECT value FROM ab_counters WHERE name = 'tx'")[0][0]
    )
    assert value(after, "actorbase_store_errors_total", op="write") == 0
    assert moved("actorbase_read_pool_wait_seconds_count") > 0


def test_data_figures_come_from_the_database(server, admin, anon):
    signup(anon)

    def agrees(s: Samples) -> bool:
        (users,) = server.sql("SELECT count(*) FROM ab_users")[0]
        (files, size) = server.sql("SELECT count(*), coalesce(sum(size), 0) FROM ab_files")[0]
        return (
            value(s, "actorbase_users") == users
            and value(s, "actorbase_storage_files") == files
            and value(s, "actorbase_storage_bytes") == size
        )

    before = eventually(admin, agrees)
    signup(anon)
    after = eventually(
        admin,
        lambda s: agrees(s) and value(s, "actorbase_users") > value(before, "actorbase_users"),
    )
    assert value(after, "actorbase_users") == value(before, "actorbase_users") + 1
    # Both signed up (a session opened) today.
    assert value(after, "actorbase_users_active_today") >= 2
    assert (
        value(after, "actorbase_users_active_today")
        == value(before, "actorbase_users_active_today") + 1
    )


def test_sockets_subscriptions_rooms_and_fanout(server, admin):
    ent = entity()

    async def run() -> None:
        before = scrape(admin)
        clients = [await WsClient.connect(server.url, ADMIN_TOKEN) for _ in range(3)]
        for client in clients[:2]:  # the same query: one live query for both
            await client.send({"type": "subscribe", "id": "s", "query": {ent: {}}})
            await client.expect("q-init", id="s")
        await clients[2].send({"type": "presence-enter", "room": f"room-{ent}", "data": {}})
        await clients[2].expect("presence-change")
        sse = await asyncio.to_thread(SseClient, server.url, {ent: {}}, ADMIN_TOKEN)
        assert (await asyncio.to_thread(sse.next_event))[0] == "q-init"
        during = scrape(admin)

        def moved(name: str, **labels: str) -> float:
            return value(during, name, **labels) - value(before, name, **labels)

        assert moved("actorbase_connections", transport="websocket") == 3
        assert (
            requests_of(during, "ws", "GET", "101") - requests_of(before, "ws", "GET", "101") == 3
        )
        assert moved("actorbase_connections", transport="sse") == 1
        assert moved("actorbase_subscriptions") == 3
        assert moved("actorbase_live_queries") == 1
        assert moved("actorbase_presence_rooms") == 1

        await clients[0].send(
            {
                "type": "mutate",
                "id": "m",
                "ops": [{"entity": ent, "id": "a", "op": "set", "data": {}}],
            }
        )
        await clients[0].expect("mutate-ok", id="m")
        for client in clients[:2]:
            await client.expect("q-diff", id="s")
        assert (await asyncio.to_thread(sse.next_event))[0] == "q-diff"
        fanned = scrape(admin)
        # One live query computed the diff once; it reached all three members.
        assert (
            value(fanned, "actorbase_diff_fanout_seconds_count")
            - value(during, "actorbase_diff_fanout_seconds_count")
            == 1
        )
        for client in clients:
            client.close()
        sse.close()
        eventually(
            admin,
            lambda s: all(
                value(s, name, **labels) == value(before, name, **labels)
                for name, labels in (
                    ("actorbase_connections", {"transport": "websocket"}),
                    ("actorbase_connections", {"transport": "sse"}),
                    ("actorbase_subscriptions", {}),
                    ("actorbase_presence_rooms", {}),
                )
            ),
        )

    asyncio.run(run())


def test_revoked_session_closes_are_counted(server, admin, anon):
    account = signup(anon)

    async def run() -> None:
        before = scrape(admin)
        client = await WsClient.connect(server.url, account.access)
        sse = await asyncio.to_thread(SseClient, server.url, {entity(): {}}, account.access)
        assert (await asyncio.to_thread(sse.next_event))[0] == "q-init"
        assert account.api.post("/api/auth/signout").status_code == 204
        assert (await client.closed_with())[0] == 4001
        assert (await asyncio.to_thread(sse.next_event))[0] == "close"
        sse.close()
        after = scrape(admin)
        for transport in ("websocket", "sse"):
            key = {"transport": transport, "reason": "revoked"}
            assert (
                value(after, "actorbase_connections_closed_total", **key)
                == value(before, "actorbase_connections_closed_total", **key) + 1
            )

    asyncio.run(run())


def test_slow_consumer_closes_are_counted(make_server, backend):
    server = make_server(backend, WS_BUFFER_SOFT="1024", WS_BUFFER_HARD="200000")
    admin = Api(server.url, ADMIN_TOKEN)
    raw = RawWs(server.url)
    raw.send({"type": "auth", "token": ADMIN_TOKEN})
    assert raw.recv()["type"] == "auth-ok"
    ent = entity()
    big = {
        "ops": [
            {"entity": ent, "id": f"r{i}", "op": "set", "data": {"pad": "y" * 50000}}
            for i in range(20)
        ]
    }
    assert (
        requests.post(
            server.url + "/api/mutate", json=big, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ).status_code
        == 200
    )
    for i in range(40):  # q-inits are never held back: the unsent bytes pile up
        raw.send({"type": "subscribe", "id": f"s{i}", "query": {ent: {"$limit": 20}}})
    while raw.recv(timeout=10) is not None:
        pass
    assert raw.close_code == 4008
    raw.close()
    samples = eventually(
        admin, lambda s: value(s, "actorbase_connections", transport="websocket") == 0
    )
    assert (
        value(
            samples,
            "actorbase_connections_closed_total",
            transport="websocket",
            reason="slow_consumer",
        )
        == 1
    )
