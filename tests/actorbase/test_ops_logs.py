"""Logs an operator can use (issue 14, item 6), read from the real server's output:
request ids, who and which route, socket open/close lines, JSON lines, no secrets."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tornado.httpclient
import tornado.websocket

from tests.handlers.accounts import Account, signup
from tests.s3server import S3Server
from tests.serverproc import ADMIN_TOKEN, Api, ServerProcess
from tests.wsclient import SseClient, WsClient

ROOT = Path(__file__).parents[2]
FN_APP = str(ROOT / "tests" / "apps" / "fn_app.py")
CORS = "https://app.example.com"
MADE_ID = re.compile(r"[0-9a-f]{16}")


@pytest.fixture(scope="module")
def server(make_module_server, backend) -> ServerProcess:
    return make_module_server(
        backend, LOG_LEVEL="info", APP=FN_APP, FUNCTION_WORKERS=1, CORS_ORIGINS=CORS
    )


@pytest.fixture(scope="module")
def user(server) -> Account:
    return signup(Api(server.url))


def rid() -> str:
    return "test-" + uuid.uuid4().hex


def lines_with(server: ServerProcess, *needles: str, count: int = 1) -> list[str]:
    """The log lines holding every needle, once at least `count` are there."""
    deadline = time.monotonic() + 10
    while True:
        lines = [ln for ln in server.log().splitlines() if all(n in ln for n in needles)]
        if len(lines) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) >= count, f"{needles} not logged:\n{server.log()[-4000:]}"
    return lines


def ws_connect(server: ServerProcess, request_id: str | None = None, **headers: str):
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    request = tornado.httpclient.HTTPRequest(
        server.url.replace("http", "ws", 1) + "/ws", headers=headers
    )
    return tornado.websocket.websocket_connect(request)


# -- request ids ------------------------------------------------------------------------------


def test_a_given_request_id_is_echoed_and_logged_with_user_and_route(server, user):
    given = rid()
    response = user.api.get("/api/data/notes", headers={"X-Request-ID": given})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == given
    (line,) = lines_with(server, "tornado.access", f"request_id={given}")
    assert "200 GET /api/data/notes " in line
    assert "route=/api/data/*" in line and f"user={user.id}" in line
    assert user.access not in server.log()


def test_a_request_id_is_made_on_every_kind_of_response(server, user):
    anon = Api(server.url)
    responses = {
        "200": user.api.get("/api/data/notes"),
        "401": anon.get("/api/data/notes"),
        "404": anon.get("/api/nowhere"),
        "preflight": anon.request(
            "OPTIONS",
            "/api/data/notes",
            headers={"Origin": CORS, "Access-Control-Request-Method": "GET"},
        ),
        "static": anon.get("/api/docs"),
    }
    assert [r.status_code for r in responses.values()] == [200, 401, 404, 204, 200]
    made = {kind: r.headers["X-Request-ID"] for kind, r in responses.items()}
    assert all(MADE_ID.fullmatch(value) for value in made.values()), made
    assert len(set(made.values())) == len(made)
    not_found = lines_with(server, f"request_id={made['404']}")
    assert any("404 GET /api/nowhere" in ln for ln in not_found)
    # A browser script may read it.
    cors = user.api.get("/api/data/notes", headers={"Origin": CORS})
    assert "X-Request-ID" in cors.headers["Access-Control-Expose-Headers"]


def test_stream_and_upgrade_responses_carry_the_request_id(server, user):
    given = rid()
    sse = SseClient(server.url, {"notes": {}}, user.access, **{"X-Request-ID": given})
    assert sse.response.headers["X-Request-ID"] == given
    assert sse.next_event()[0] == "q-init"
    sse.close()

    async def upgrade() -> tuple[str, str]:
        given_ws = rid()
        conn = await ws_connect(server, given_ws)
        echoed = conn.headers["X-Request-ID"]
        conn.close()
        made_ws = await ws_connect(server)
        made = made_ws.headers["X-Request-ID"]
        made_ws.close()
        assert echoed == given_ws
        return given_ws, made

    given_ws, made = asyncio.run(upgrade())
    assert MADE_ID.fullmatch(made)
    assert lines_with(server, "101 GET /ws", "route=/ws", f"request_id={given_ws}")


@pytest.mark.parametrize(
    "bad", ["x" * 129, "<script>", "two words", "abc%0Aforged", "id\u00e9", ""]
)
def test_an_unsafe_request_id_is_replaced(server, bad):
    response = requests.get(
        server.url + "/api/admin/health", headers={"X-Request-ID": bad.encode()}, timeout=10
    )
    made = response.headers["X-Request-ID"]
    assert made != bad and MADE_ID.fullmatch(made)
    (line,) = lines_with(server, f"request_id={made}")
    assert "GET /api/admin/health" in line
    if bad:
        assert bad not in server.log()


def test_an_error_line_carries_the_request_id_of_its_request(server):
    given = rid()
    response = Api(server.url, ADMIN_TOKEN).post(
        "/api/fn/crash", json={}, headers={"X-Request-ID": given}
    )
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == given
    (error,) = lines_with(server, " ERROR ", f"request_id={given}", "worker died running crash")
    (access,) = lines_with(server, "tornado.access", f"request_id={given}")
    assert "500 POST /api/fn/crash" in access and "route=/api/fn/*" in access
    assert "user=admin" in access and ADMIN_TOKEN not in server.log()
    assert error != access
    # A function's traceback, written by its worker process, is about its request too.
    boom = rid()
    admin = Api(server.url, ADMIN_TOKEN)
    assert admin.post("/api/fn/boom", json={}, headers={"X-Request-ID": boom}).status_code == 500
    (traceback_end,) = lines_with(server, "RuntimeError: secret internals", f"request_id={boom}")
    assert " WARNING actors.functions: function worker " in traceback_end


# -- secrets ----------------------------------------------------------------------------------


def test_tokens_and_signatures_never_reach_the_log(server, user):
    admin = Api(server.url, ADMIN_TOKEN)
    path = f"logs/{uuid.uuid4().hex}.txt"
    uploaded = admin.post(
        "/api/storage/upload",
        files={"file": ("a.txt", b"hello", "text/plain")},
        data={"path": path},
    )
    assert uploaded.status_code == 201
    url = admin.get(f"/api/storage/{path}").json()["url"]
    signature = re.search(r"[?&]s=([^&]+)", url).group(1)
    given = rid()
    assert requests.get(url, headers={"X-Request-ID": given}, timeout=10).content == b"hello"
    (line,) = lines_with(server, f"request_id={given}")
    assert "route=/api/files/*" in line and "s=[redacted]" in line

    # EventSource's way: the access token in the URL.
    sse_id = rid()
    stream = requests.get(
        server.url + "/api/subscribe",
        params={"q": '{"notes": {}}', "token": user.access},
        headers={"X-Request-ID": sse_id},
        stream=True,
        timeout=15,
    )
    assert next(stream.iter_lines(decode_unicode=True)) == "event: q-init"
    stream.close()
    lines = lines_with(server, f"request_id={sse_id}", count=3)  # open, close, access
    assert any("token=[redacted]" in ln and f"user={user.id}" in ln for ln in lines), lines
    log = server.log()
    assert signature not in log and user.access not in log and ADMIN_TOKEN not in log


# -- sockets ----------------------------------------------------------------------------------


def test_websocket_open_and_close_lines(server, user):
    given, refused = rid(), rid()

    async def go() -> None:
        conn = await ws_connect(server, given)
        client = WsClient(conn)
        await client.send({"type": "auth", "token": user.access})
        await client.expect("auth-ok")
        await client.send({"type": "subscribe", "id": "s1", "query": {"notes": {}}})
        await client.expect("q-init")
        conn.close(4321, "bye\nforged line")
        # The server closes this one: a bad token.
        bad = WsClient(await ws_connect(server, refused))
        await bad.send({"type": "auth", "token": "not-a-token"})
        assert (await bad.closed_with())[0] == 4001

    asyncio.run(go())
    (opened,) = lines_with(server, "websocket open", f"request_id={given}")
    assert "remote_ip=127.0.0.1" in opened
    (closed,) = lines_with(server, "websocket close 4321", f"request_id={given}")
    assert "closed_by=client" in closed and f"user={user.id}" in closed
    assert 'close_reason="bye\\x0aforged line"' in closed
    assert re.search(r" duration_ms=\d+(\.\d+)? ", closed)
    assert "messages_in=2 " in closed and re.search(r" messages_out=[1-9]\d* ", closed)
    assert not any(ln.startswith("forged") for ln in server.log().splitlines())
    (by_server,) = lines_with(server, "websocket close 4001", f"request_id={refused}")
    assert "closed_by=server" in by_server and "user=" not in by_server
    assert user.access not in server.log()


def test_sse_open_and_close_lines(server, user):
    given = rid()
    sse = SseClient(server.url, {"notes": {}}, user.access, **{"X-Request-ID": given})
    assert sse.next_event()[0] == "q-init"
    (opened,) = lines_with(server, "sse open", f"request_id={given}")
    assert f"user={user.id}" in opened and "remote_ip=127.0.0.1" in opened
    sse.close()
    (closed,) = lines_with(server, "sse close", f"request_id={given}")
    assert "closed_by=client" in closed and f"user={user.id}" in closed
    assert re.search(r" duration_ms=\d+(\.\d+)? ", closed)


# -- CORS -------------------------------------------------------------------------------------


def test_a_cors_refusal_names_the_origin_bounded(server):
    evil = "https://evil.example"
    refused = requests.options(
        server.url + "/api/data/notes",
        headers={"Origin": evil, "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert refused.status_code == 403
    (line,) = lines_with(server, f"origin {evil} refused (preflight)")
    assert f"request_id={refused.headers['X-Request-ID']}" in line
    long_origin = "https://" + "a" * 500 + ".example"
    requests.options(
        server.url + "/api/data/notes",
        headers={"Origin": long_origin, "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    (cut,) = lines_with(server, "https://" + "a" * 192 + "…")
    assert long_origin not in cut

    async def ws() -> int:
        try:
            await ws_connect(server, Origin="https://ws-evil.example")
        except tornado.httpclient.HTTPClientError as exc:
            return exc.code
        return 101

    assert asyncio.run(ws()) == 403
    assert lines_with(server, "origin https://ws-evil.example refused (websocket)")


# -- the configuration at start ---------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_the_configuration_is_logged_once_without_secrets(make_server, backend, storage, request):
    env = {}
    if storage == "s3":
        moto = request.getfixturevalue("s3")
        bucket = moto.bucket()
        # moto takes any key: a unique one shows it is never written.
        env = {**moto.server_env(bucket), "AWS_SECRET_ACCESS_KEY": "sk-" + uuid.uuid4().hex}
    server = make_server(
        backend,
        start=False,
        APP=FN_APP,
        FUNCTION_WORKERS=1,
        CORS_ORIGINS=CORS,
        LOG_LEVEL="error",
        **env,
    )
    password = "pw-" + uuid.uuid4().hex
    if backend == "postgres":  # the test server trusts local users: any password works
        server.env["DATABASE_URL"] = server.database_url.replace(
            "postgresql://postgres@", f"postgresql://postgres:{password}@", 1
        )
        assert password in server.env["DATABASE_URL"]
    server.start()
    (line,) = lines_with(server, "actorbase.start: configuration ")
    database = re.search(r"database=(\S+)", line).group(1)
    assert database == server.database_url  # as given, less the password
    if storage == "s3":
        assert f"storage=s3://{bucket}/files s3_endpoint={moto.endpoint} " in line
        assert env["AWS_SECRET_ACCESS_KEY"] not in server.log()
    else:
        assert f"storage=file://{server.data_dir / 'storage'} " in line
    assert f"cors_origins={CORS}" in line
    assert f"app={FN_APP}" in line and re.search(r"functions=\S*crash", line)
    assert "entities=" in line and "max_body_bytes=1048576" in line
    assert "admin_token=ADMIN_TOKEN" in line
    log = server.log()
    assert ADMIN_TOKEN not in log and password not in log
    assert "listening on" in log  # at LOG_LEVEL=error too


# -- JSON -------------------------------------------------------------------------------------


def test_json_lines_carry_the_fields(make_server, backend):
    server = make_server(backend, LOG_LEVEL="info", LOG_FORMAT="json", CORS_ORIGINS=CORS)
    account = signup(Api(server.url))
    given, ws_id, sse_id = rid(), rid(), rid()
    assert account.api.get("/api/data/notes", headers={"X-Request-ID": given}).status_code == 200

    async def ws() -> None:
        client = WsClient(await ws_connect(server, ws_id))
        await client.send({"type": "auth", "token": account.access})
        await client.expect("auth-ok")
        client.ws.close(4000, 'done "now"')

    asyncio.run(ws())
    sse = requests.get(
        server.url + "/api/subscribe",
        params={"q": '{"notes": {}}', "token": account.access},
        headers={"X-Request-ID": sse_id},
        stream=True,
        timeout=15,
    )
    assert next(sse.iter_lines(decode_unicode=True)) == "event: q-init"
    sse.close()
    requests.options(
        server.url + "/api/data/notes",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    lines_with(server, '"close_code": 4000')
    lines_with(server, sse_id, count=3)
    assert server.stop() == 0
    records = [json.loads(line) for line in server.log().splitlines()]  # every line
    for record in records:
        assert {"time", "level", "logger", "message", "request_id"} <= set(record), record
    (access,) = [r for r in records if r["logger"] == "tornado.access" and r["request_id"] == given]
    assert access["method"] == "GET" and access["route"] == "/api/data/*"
    assert access["status"] == 200 and access["user"] == account.id
    assert access["remote_ip"] == "127.0.0.1" and isinstance(access["duration_ms"], float)
    (closed,) = [r for r in records if r.get("close_code") == 4000]
    assert closed["request_id"] == ws_id and closed["close_reason"] == 'done "now"'
    assert closed["closed_by"] == "client" and closed["user"] == account.id
    assert closed["messages_in"] == 1 and closed["duration_ms"] >= 0
    by_sse = [r for r in records if r["request_id"] == sse_id]
    assert {r["message"] for r in by_sse} >= {"sse open", "sse close 1006"}
    assert any("token=[redacted]" in r["message"] for r in by_sse)
    (config,) = [r for r in records if r["message"] == "configuration"]
    assert config["database"] == server.database_url and config["cors_origins"] == [CORS]
    (cors,) = [r for r in records if r.get("origin") == "https://evil.example"]
    assert cors["level"] == "WARNING" and cors["channel"] == "preflight"
    text = server.log()
    assert account.access not in text and ADMIN_TOKEN not in text
