"""Wire conventions: auth gate, unknown routes, body limits, rate-limit headers."""

from __future__ import annotations

import time

import pytest
import requests

from tests.serverproc import ADMIN_TOKEN, Api, error_of

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def test_data_endpoints_need_a_token(anon, admin):
    for method, path in (
        ("GET", "/api/data/todos"),
        ("POST", "/api/data/todos"),
        ("GET", "/api/data/todos/x"),
        ("PATCH", "/api/data/todos/x"),
        ("DELETE", "/api/data/todos/x"),
        ("POST", "/api/mutate"),
    ):
        response = anon.request(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert error_of(response)["code"] == "UNAUTHENTICATED"
        wrong = admin.with_token(ADMIN_TOKEN + "x").request(method, path, json={})
        assert error_of(wrong)["code"] == "UNAUTHENTICATED"
    basic = anon.get("/api/data/todos", headers={"Authorization": f"Basic {ADMIN_TOKEN}"})
    assert basic.status_code == 401


def test_unknown_routes_and_methods_are_404(admin):
    for method, path in (("GET", "/api/nope"), ("GET", "/"), ("PUT", "/api/data/todos/x")):
        response = admin.request(method, path)
        assert response.status_code == 404, (method, path)
        assert error_of(response)["code"] == "NOT_FOUND"
        assert all(h in response.headers for h in RATE_HEADERS)


def test_every_response_carries_rate_limit_headers(admin, anon):
    for response in (
        anon.get("/api/admin/health"),
        admin.get("/api/data/todos"),
        anon.get("/api/data/todos"),
        admin.post("/api/data/todos", data="x", headers={"Content-Type": "application/json"}),
    ):
        for header in RATE_HEADERS:
            assert response.headers[header].isdigit(), (header, response.headers)
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())


def test_oversized_body_is_413(admin):
    body = b'{"a": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = admin.post("/api/data/big", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert error_of(response)["code"] == "PAYLOAD_TOO_LARGE"
    assert admin.get("/api/data/big").json()["total"] == 0


def test_errors_never_leak_tracebacks(admin):
    response = admin.post(
        "/api/mutate", data=b"\x00\x01", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "Traceback" not in response.text


def test_health_has_the_seed_fields(anon, backend):
    response = anon.get("/api/admin/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["version"] == "0.1.0" and body["protocolVersion"] == 1
    assert isinstance(body["uptime"], int) and body["uptime"] >= 0
    assert body["connections"]["websocket"] == 0 and body["connections"]["http"] >= 1
    if backend == "sqlite":
        assert body["postgres"] == "not configured" and body["database"] == "sqlite"
    else:
        assert body["postgres"] == "connected" and body["database"] == "postgresql"


def test_rate_limit_exhaustion_gives_429(make_server):
    server = make_server("sqlite", RATE_LIMIT=5, RATE_LIMIT_WINDOW=60)
    api = Api(server.url, ADMIN_TOKEN)
    seen = [api.get("/api/data/todos") for _ in range(5)]
    assert [r.status_code for r in seen] == [200] * 5
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in seen] == [4, 3, 2, 1, 0]
    limited = api.get("/api/data/todos")
    assert limited.status_code == 429
    error = error_of(limited)
    assert error["code"] == "RATE_LIMITED" and error["retryAfter"] >= 1
    assert int(limited.headers["Retry-After"]) == error["retryAfter"]
    other_client = requests.get(server.url + "/api/admin/health", timeout=5)
    assert other_client.status_code == 200  # budgets are per client


UNSTORABLE = [
    '{"title": "a\\u0000b"}',
    '{"a\\u0000": 1}',
    '{"title": "\\ud800"}',
    '{"\\udc00x": true}',
    '{"deep": [{"x": ["\\u0000"]}]}',
    '{"n": NaN}',
    '{"n": Infinity}',
    '{"n": 123456789012345678901234567890}',
    '{"n": {"$in": [-99999999999999999999999]}}',
]


@pytest.mark.parametrize("body", UNSTORABLE)
def test_json_neither_backend_can_store_is_400(admin, body):
    headers = {"Content-Type": "application/json"}
    for path in ("/api/data/unstorable", "/api/auth/signin", "/api/query"):
        response = admin.post(path, data=body.encode(), headers=headers)
        assert response.status_code == 400, (path, body, response.text)
        assert error_of(response)["code"] == "INVALID_ARGUMENT"
    where = admin.get("/api/data/unstorable", params={"where": body})
    assert error_of(where)["code"] == "INVALID_ARGUMENT"
    assert admin.get("/api/data/unstorable").json()["total"] == 0


def test_signin_with_nul_in_email_is_400(anon):
    body = '{"email": "a\\u0000@example.com", "password": "whatever123"}'
    response = anon.post(
        "/api/auth/signin", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and error_of(response)["code"] == "INVALID_ARGUMENT"


def test_websocket_messages_follow_the_same_json_rules(server):
    import asyncio

    from tests.wsclient import WsClient

    async def go() -> dict:
        client = await WsClient.connect(server.url, ADMIN_TOKEN)
        await client.send(
            '{"type": "mutate", "id": "m1", "ops": [{"entity": "unstorable", "id": "x",'
            ' "op": "set", "data": {"t": "a\\u0000"}}]}'
        )
        return await client.expect("error")

    error = asyncio.run(go())["error"]
    assert error["code"] == "INVALID_ARGUMENT" and "NUL" in error["message"]
