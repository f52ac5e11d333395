"""Logs an operator can use (issue 14, item 6), the cases tests/actorbase/test_ops_logs.py
leaves out, on both backends: the access lines of sign-up, sign-in, MFA verify and
refresh name the user they handed tokens to; credentials in request bodies, headers,
query strings and malformed requests never reach the log, in text or JSON."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pyotp
import pytest
import requests

from tests.actorbase.test_ops_logs import lines_with, rid
from tests.handlers.accounts import PASSWORD, signup
from tests.serverproc import Api, ServerProcess

FAKE_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c3JfbG9nc2VjcmV0In0.c2lnbmF0dXJlLXNlY3JldA"


@pytest.fixture(scope="module")
def server(make_module_server, backend) -> ServerProcess:
    return make_module_server(backend, LOG_LEVEL="info")


def _secret() -> str:
    return "SECRET" + uuid.uuid4().hex


def _access_line(server: ServerProcess, request_id: str) -> str:
    (line,) = lines_with(server, "tornado.access", f"request_id={request_id}")
    return line


def test_token_handing_responses_name_their_user(server):
    anon = Api(server.url)
    ids = {kind: rid() for kind in ("signup", "signin", "refresh", "mfa")}
    account = signup(anon, headers={"X-Request-ID": ids["signup"]})
    signed_in = anon.post(
        "/api/auth/signin",
        json={"email": account.email, "password": PASSWORD},
        headers={"X-Request-ID": ids["signin"]},
    ).json()
    refreshed = anon.post(
        "/api/auth/refresh",
        json={"refreshToken": signed_in["refreshToken"]},
        headers={"X-Request-ID": ids["refresh"]},
    ).json()
    # MFA: enrol, enable, then a sign-in's second step.
    api = Api(server.url, refreshed["accessToken"])
    secret = api.post("/api/auth/mfa/enroll", json={"password": PASSWORD}).json()["secret"]
    code = pyotp.TOTP(secret).now()
    enabled = api.post("/api/auth/mfa/enable", json={"code": code, "password": PASSWORD})
    assert enabled.status_code == 200, enabled.text
    recovery = enabled.json()["recoveryCodes"][0]  # this time step's code is spent
    challenge = anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD})
    mfa_token = challenge.json()["mfaToken"]
    verified = anon.post(
        "/api/auth/mfa/verify",
        json={"mfaToken": mfa_token, "code": recovery},
        headers={"X-Request-ID": ids["mfa"]},
    )
    assert verified.status_code == 200, verified.text
    for kind, request_id in ids.items():
        assert f" user={account.id} " in _access_line(server, request_id), kind
    # A refused one names nobody.
    refused = rid()
    anon.post(
        "/api/auth/signin",
        json={"email": account.email, "password": "wrong " + PASSWORD},
        headers={"X-Request-ID": refused},
    )
    assert " user=" not in _access_line(server, refused)
    log = server.log()
    for secret_value in (
        PASSWORD,
        account.access,
        account.refresh,
        signed_in["refreshToken"],
        refreshed["refreshToken"],
        mfa_token,
        secret,
        recovery,
        verified.json()["refreshToken"],
    ):
        assert secret_value not in log


def test_credentials_in_malformed_requests_never_reach_the_log(server):
    """Requests Tornado's parser refuses (logged by `tornado.general`) and requests our
    handlers refuse, each carrying a credential somewhere."""
    secrets = [_secret() for _ in range(9)]
    raw = [
        f"GET /api/subscribe?token={secrets[0]} HTTP/1.1\r\nHost: x\r\nno colon {secrets[1]}\r\n",
        f"GET /api/data/n?access_token={secrets[2]} HTTP/1.1\r\nContent-Length: x{secrets[3]}\r\n",
        f"GET /api/data/n?refresh%5Ftoken={secrets[4]} HTTP/9.9\r\nHost: x\r\n",
        f"GET /api/data/n HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secrets[5]}\r\n",
        f"GET /api/data/n HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {FAKE_JWT}\r\n",
        f"GET /api/files/a.txt?s={secrets[6]}&e=1&v=0 HTTP/1.1\r\nHost: x\r\n",
        f"GET /ws?token={secrets[7]} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://evil.example\r\n",
        f"POST /api/auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f'Content-Length: 40\r\n\r\n{{"refreshToken": "{secrets[8]}"',
    ]
    for request in raw:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            conn.sendall((request if "\r\n\r\n" in request else request + "\r\n").encode())
            conn.shutdown(socket.SHUT_WR)
            try:
                while conn.recv(4096):
                    pass
            except OSError:  # reset, or the truncated body's wait timed out
                pass
    # Every one of them was logged (refused by the parser, or answered).
    lines_with(server, "tornado.general", "Malformed HTTP message", count=3)
    lines_with(server, "/ws?token=[redacted]")
    lines_with(server, "/api/files/a.txt?s=[redacted]&e=1&v=0")
    time.sleep(0.3)
    log = server.log()
    leaked = [s for s in secrets if s in log]
    assert not leaked and FAKE_JWT not in log, leaked


def test_json_lines_keep_credentials_out_and_name_the_user(make_server, backend):
    server = make_server(backend, LOG_LEVEL="info", LOG_FORMAT="json")
    anon = Api(server.url)
    given = rid()
    account = signup(anon, headers={"X-Request-ID": given})
    secret = _secret()
    anon.get(f"/api/subscribe?q=%7B%7D&token={secret}")
    lines_with(server, "token=[redacted]")
    records = [json.loads(line) for line in server.log().splitlines()]
    (access,) = [r for r in records if r["request_id"] == given]
    assert access["user"] == account.id and access["route"] == "/api/auth/signup"
    log = server.log()
    assert secret not in log and account.refresh not in log and account.access not in log


def test_a_refused_origin_of_a_request_without_preflight_is_logged(make_server, backend):
    """EventSource sends no preflight: its stream is answered without
    Access-Control-Allow-Origin and the browser withholds it; the log says why."""
    allowed = "https://app.example.com"
    server = make_server(backend, CORS_ORIGINS=allowed)
    account = signup(Api(server.url))
    ids = {}
    for name, origin in (
        ("evil", "https://evil.example"),
        ("allowed", allowed),
        ("same-host", server.url),
        ("none", None),
    ):
        ids[name] = rid()
        headers = {"X-Request-ID": ids[name], **({"Origin": origin} if origin else {})}
        stream = requests.get(
            server.url + "/api/subscribe",
            params={"q": '{"notes": {}}', "token": account.access},
            headers=headers,
            stream=True,
            timeout=15,
        )
        assert next(stream.iter_lines(decode_unicode=True)) == "event: q-init"
        allow = stream.headers.get("Access-Control-Allow-Origin")
        stream.close()
        assert allow == (allowed if name == "allowed" else None), name
    preflight = rid()
    requests.options(
        server.url + "/api/data/notes",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "GET",
            "X-Request-ID": preflight,
        },
        timeout=10,
    )
    (line,) = lines_with(server, "refused (request)", f"request_id={ids['evil']}")
    assert "CORS: origin https://evil.example refused (request)" in line
    lines_with(server, f"request_id={preflight}", "refused (preflight)")
    assert server.stop() == 0
    log = server.log()
    assert log.count("refused (request)") == 1, log  # not allowed, same host, none
    assert log.count("refused (preflight)") == 1, log  # not twice
