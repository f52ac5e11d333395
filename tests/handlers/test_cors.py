"""CORS over real HTTP and WebSocket: preflights, the headers of actual responses, and
the WebSocket handshake's Origin check, against CORS_ORIGINS. No store is involved:
SQLite only."""

from __future__ import annotations

import asyncio

import pytest
import tornado.httpclient
import tornado.websocket

from tests.serverproc import ADMIN_TOKEN, Api, error_of

ALLOWED = "https://app.example.com"
OTHER = "https://evil.example.net"


@pytest.fixture(scope="module")
def server(make_module_server):
    return make_module_server("sqlite", CORS_ORIGINS=f"{ALLOWED}, http://localhost:3000")


def preflight(api: Api, path: str, origin: str, method: str = "POST"):
    return api.request(
        "OPTIONS",
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_preflight_for_a_listed_origin(server):
    response = preflight(Api(server.url), "/api/query", ALLOWED)
    assert response.status_code == 204
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert headers["Access-Control-Allow-Methods"] == "POST"
    assert headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type, Idempotency-Key"
    assert headers["Vary"] == "Origin"
    assert int(headers["Access-Control-Max-Age"]) > 0
    methods = preflight(Api(server.url), "/api/data/todos/1", ALLOWED, "PATCH").headers
    assert methods["Access-Control-Allow-Methods"] == "GET, DELETE, PATCH"


def test_preflight_refusals(server):
    api = Api(server.url)
    refused = preflight(api, "/api/query", OTHER)
    assert error_of(refused)["code"] == "PERMISSION_DENIED"
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert error_of(preflight(api, "/api/query", ALLOWED, "DELETE"))["status"] == 403
    assert error_of(preflight(api, "/api/nowhere", ALLOWED))["code"] == "NOT_FOUND"


def test_actual_responses_carry_cors_headers(server):
    admin = Api(server.url, ADMIN_TOKEN)
    response = admin.get("/api/data/todos", headers={"Origin": ALLOWED})
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Vary"] == "Origin"
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= exposed
    # Errors too: a browser script must be able to read a 401.
    error = Api(server.url).get("/api/data/todos", headers={"Origin": ALLOWED})
    assert error.status_code == 401
    assert error.headers["Access-Control-Allow-Origin"] == ALLOWED
    other = admin.get("/api/data/todos", headers={"Origin": OTHER})
    assert other.status_code == 200  # CORS is the browser's check; the server only omits
    assert "Access-Control-Allow-Origin" not in other.headers
    assert other.headers["Vary"] == "Origin"


def test_no_origins_configured_by_default(make_server):
    server = make_server("sqlite")
    assert error_of(preflight(Api(server.url), "/api/query", ALLOWED))["status"] == 403
    response = Api(server.url, ADMIN_TOKEN).get("/api/data/todos", headers={"Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in response.headers


async def _handshake(url: str, origin: str | None) -> int:
    headers = {"Origin": origin} if origin else {}
    request = tornado.httpclient.HTTPRequest(url, headers=headers)
    try:
        ws = await tornado.websocket.websocket_connect(request)
    except tornado.httpclient.HTTPClientError as exc:
        return exc.code
    ws.close()
    return 101


def test_websocket_origin_check(server):
    url = server.url.replace("http", "ws", 1) + "/ws"
    host = server.url.removeprefix("http://")

    async def run() -> dict[str | None, int]:
        origins = [ALLOWED, "http://localhost:3000", OTHER, f"http://{host}", None]
        return {o: await _handshake(url, o) for o in origins}

    codes = asyncio.run(run())
    assert codes == {
        ALLOWED: 101,
        "http://localhost:3000": 101,
        OTHER: 403,
        f"http://{host}": 101,  # a page this server serves (same host)
        None: 101,  # not a browser: no Origin, allowed
    }
