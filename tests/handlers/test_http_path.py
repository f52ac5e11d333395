"""The REST request path after its per-request work was cut (issue 13, slice http):
what clients and operators see stays as it was. Response headers on success and on
every kind of error (Date, Server, nosniff, the rate-limit figures, the request id),
the access log at each LOG_LEVEL, and each user's rules with tokens taken in turn.
And body framing Tornado refuses is answered in the seed's format, on a connection
that then closes without reading another request from it."""

from __future__ import annotations

import email.utils
import json
import re
import socket
import time
import uuid

import pytest
import tornado

from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, ServerProcess

RATE = 40


@pytest.fixture(scope="module")
def server(make_module_server, backend) -> ServerProcess:
    # A budget small enough to run out; LOG_LEVEL=warning: 4xx lines only.
    return make_module_server(backend, RATE_LIMIT=str(RATE), LOG_LEVEL="warning")


def assert_common_headers(response) -> None:
    headers = response.headers
    sent = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
    assert abs(sent - time.time()) < 120, headers["Date"]
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", headers["Date"])
    assert headers["Server"] == f"TornadoServer/{tornado.version}"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-RateLimit-Limit"] == str(RATE)
    assert headers["X-RateLimit-Remaining"].isdigit()
    assert headers["X-RateLimit-Reset"].isdigit()
    assert re.fullmatch(r"[0-9a-f]{16}", headers["X-Request-ID"])
    assert headers["Content-Type"] == "application/json; charset=utf-8"


def test_creates_gets_and_errors_carry_every_header(server):
    anon = Api(server.url)
    user = signup(anon)
    created = user.api.post("/api/data/http_notes", json={"title": "a"})
    assert created.status_code == 201
    assert_common_headers(created)
    row_id = created.json()["data"]["id"]
    got = user.api.get(f"/api/data/http_notes/{row_id}")
    assert got.status_code == 200 and got.json()["data"]["title"] == "a"
    assert_common_headers(got)
    assert got.headers["Etag"].startswith('"')
    for response, code in (
        (user.api.get("/api/data/http_notes/nope"), "NOT_FOUND"),
        (anon.with_token("not-a-token").get(f"/api/data/http_notes/{row_id}"), "UNAUTHENTICATED"),
        (user.api.post("/api/data/http_notes", data=b"{", headers=_JSON), "INVALID_ARGUMENT"),
        (anon.get("/api/no/such/route"), "NOT_FOUND"),
    ):
        assert response.json()["error"]["code"] == code, response.text
        assert_common_headers(response)


_JSON = {"Content-Type": "application/json"}


def test_the_last_token_gives_retry_after_in_whole_seconds(server):
    user = signup(Api(server.url))
    responses = [user.api.get("/api/data/http_spent/x") for _ in range(RATE + 1)]
    assert [r.status_code for r in responses[:RATE]] == [404] * RATE
    refused = responses[-1]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert refused.headers["Retry-After"].isdigit() and int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert_common_headers(refused)


def test_users_taking_turns_each_keep_their_own_rules(server):
    anon = Api(server.url)
    ada, bob = signup(anon), signup(anon)
    ada_row = ada.api.post("/api/data/http_turns", json={"n": 1}).json()["data"]["id"]
    bob_row = bob.api.post("/api/data/http_turns", json={"n": 2}).json()["data"]["id"]
    for _ in range(3):
        assert ada.api.get(f"/api/data/http_turns/{ada_row}").status_code == 200
        assert bob.api.get(f"/api/data/http_turns/{ada_row}").status_code == 404
        assert bob.api.get(f"/api/data/http_turns/{bob_row}").status_code == 200
        assert ada.api.get(f"/api/data/http_turns/{bob_row}").status_code == 404


def test_the_access_log_follows_log_level(server):
    user = signup(Api(server.url))
    quiet, loud = f"quiet-{uuid.uuid4().hex}", f"loud-{uuid.uuid4().hex}"
    assert user.api.get("/api/data/http_log", headers={"X-Request-ID": quiet}).status_code == 200
    missing = user.api.get("/api/data/http_log/none", headers={"X-Request-ID": loud})
    assert missing.status_code == 404
    deadline = time.monotonic() + 10
    while loud not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    (line,) = [ln for ln in server.log().splitlines() if loud in ln]
    assert "WARNING tornado.access" in line and "404 GET /api/data/http_log/none " in line
    assert f"user={user.id}" in line and "route=/api/data/*/*" in line
    assert quiet not in server.log()  # a 200 is an info line: not written at warning


def test_an_info_level_server_writes_the_success_lines(make_server, backend):
    server = make_server(backend, LOG_LEVEL="info")
    user = signup(Api(server.url))
    given = f"info-{uuid.uuid4().hex}"
    assert user.api.get("/api/data/http_log", headers={"X-Request-ID": given}).status_code == 200
    deadline = time.monotonic() + 10
    while given not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    (line,) = [ln for ln in server.log().splitlines() if given in ln]
    assert "INFO tornado.access" in line and "200 GET /api/data/http_log " in line
    assert "route=/api/data/*" in line and f"user={user.id}" in line


def raw_exchange(server: ServerProcess, request: bytes) -> bytes:
    """Send `request` as is; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def post(path: str, framing: bytes, body: bytes = b"") -> bytes:
    return (
        (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        + framing
        + b"\r\n"
        + body
    )


@pytest.mark.parametrize(
    "framing, message",
    [
        (b"Content-Length: abc\r\n", "Content-Length must be one whole number of bytes"),
        (b"Content-Length: -1\r\n", "Content-Length must be one whole number of bytes"),
        (b"Content-Length: 5, 6\r\n", "Content-Length must be one whole number of bytes"),
        (b"Content-Length: \xb2\r\n", "Content-Length must be one whole number of bytes"),
        (b"Transfer-Encoding: gzip\r\n", "Transfer-Encoding must be chunked"),
        (
            b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
            "Content-Length and Transfer-Encoding may not both be sent",
        ),
    ],
)
def test_refused_framing_is_answered_in_json_and_closes(server, framing, message):
    # What follows the headers (a whole second request here) is never read as one.
    smuggled = post("/api/data/http_smuggled", b"Content-Length: 2\r\n", b"{}")
    received = raw_exchange(server, post("/api/data/http_framed", framing, smuggled))
    headers = _refusal(received, message)
    assert headers["X-Ratelimit-Limit"] == str(RATE)
    admin = Api(server.url, ADMIN_TOKEN)
    assert admin.get("/api/data/http_smuggled").json()["total"] == 0
    assert admin.get("/api/data/http_framed").json()["total"] == 0


@pytest.mark.parametrize(
    "start",
    [
        b"GET /admin/ HTTP/1.1\r\n",
        b"GET /api/docs/swagger-ui.css HTTP/1.1\r\n",
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        b"OPTIONS /api/data/http_framed HTTP/1.1\r\nOrigin: https://app.example\r\n"
        b"Access-Control-Request-Method: POST\r\n",
    ],
    ids=["dashboard", "docs asset", "websocket", "preflight"],
)
@pytest.mark.parametrize(
    "framing, message",
    [
        (b"Content-Length: abc\r\n", "Content-Length must be one whole number of bytes"),
        (b"Transfer-Encoding: gzip\r\n", "Transfer-Encoding must be chunked"),
    ],
)
def test_refused_framing_off_the_json_api_is_answered_in_json_too(server, start, framing, message):
    """Routes whose handlers never run for it: the same answer, written before them."""
    smuggled = post("/api/data/http_smuggled_static", b"Content-Length: 2\r\n", b"{}")
    received = raw_exchange(server, start + b"Host: x\r\n" + framing + b"\r\n" + smuggled)
    _refusal(received, message)
    admin = Api(server.url, ADMIN_TOKEN)
    assert admin.get("/api/data/http_smuggled_static").json()["total"] == 0


def _refusal(received: bytes, message: str) -> dict[str, str]:
    """The refusal's headers, after checking it is the whole answer: the seed's 400
    in JSON, nosniff, the request id, and the connection closing after it."""
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), received
    headers = dict(line.decode("latin1").split(": ", 1) for line in head.split(b"\r\n")[1:])
    assert headers["Connection"] == "close"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r"[0-9a-f]{16}", headers["X-Request-Id"])
    assert int(headers["Content-Length"]) == len(body)  # nothing after the answer
    assert json.loads(body) == {
        "error": {"code": "INVALID_ARGUMENT", "message": message, "status": 400}
    }
    return headers


def test_a_repeated_equal_content_length_is_one_length(server):
    received = raw_exchange(
        server,
        post("/api/data/http_repeated", b"Content-Length: 2, 2\r\nConnection: close\r\n", b"{}"),
    )
    assert received.startswith(b"HTTP/1.1 201 Created\r\n"), received
