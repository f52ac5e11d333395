"""Smaller auth hardening over real HTTP: no access token in the access log, no caching
of token responses, nosniff on every API response, NFKC emails (both backends), and
a per-address budget on MFA verify."""

from __future__ import annotations

import time
import uuid

import requests

from tests.handlers.accounts import PASSWORD, new_email, signin, signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of


def _fullwidth(text: str) -> str:
    """ASCII letters, digits and punctuation as their fullwidth compatibility forms."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _no_store(response: requests.Response) -> None:
    assert response.headers["Cache-Control"] == "no-store", response.headers
    assert response.headers["Pragma"] == "no-cache"


def test_token_responses_are_not_cached(anon):
    email = new_email()
    created = anon.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert created.status_code == 201
    _no_store(created)
    signed_in = anon.post("/api/auth/signin", json={"email": email, "password": PASSWORD})
    assert signed_in.status_code == 200
    _no_store(signed_in)
    refresh = signed_in.json()["refreshToken"]
    refreshed = anon.post("/api/auth/refresh", json={"refreshToken": refresh})
    assert refreshed.status_code == 200
    _no_store(refreshed)
    failed = anon.post("/api/auth/signin", json={"email": email, "password": "nope nope"})
    assert failed.status_code == 401
    _no_store(failed)
    verify = anon.post("/api/auth/mfa/verify", json={"mfaToken": "mfa_x", "code": "123456"})
    assert verify.status_code == 401
    _no_store(verify)
    jwks = anon.get("/.well-known/jwks.json")  # public keys stay cacheable
    assert jwks.headers["Cache-Control"] == "public, max-age=300"
    assert "Pragma" not in jwks.headers


def test_every_api_response_is_nosniff(anon, admin):
    account = signup(anon)
    responses = [
        account.api.get("/api/auth/me"),
        account.api.post("/api/data/notes", json={"title": "<html>"}),
        anon.get("/api/data/notes"),  # 401
        admin.get("/api/nowhere"),  # 404
        anon.get("/api/admin/health"),
        account.api.post("/api/auth/signout"),  # 204
    ]
    for response in responses:
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.url


def test_a_fullwidth_email_is_the_same_account(anon):
    local = "user-" + uuid.uuid4().hex[:8]
    account = signup(anon, f"{local}@example.com")
    variant = f"{_fullwidth(local)}@example.com"
    taken = anon.post("/api/auth/signup", json={"email": variant, "password": PASSWORD})
    assert taken.status_code == 409 and error_of(taken)["code"] == "CONFLICT"
    shouty = _fullwidth(f"{local.upper()}@EXAMPLE.COM")
    for spelling in (variant, shouty):
        tokens = signin(anon, spelling)
        me = anon.with_token(tokens["accessToken"]).get("/api/auth/me").json()
        assert me["id"] == account.id and me["email"] == account.email


def test_a_fullwidth_sign_up_is_stored_normalized(anon):
    local = "user-" + uuid.uuid4().hex[:8]
    response = anon.post(
        "/api/auth/signup", json={"email": f"{_fullwidth(local)}@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.json()["user"]["email"] == f"{local}@example.com"
    assert "accessToken" in signin(anon, f"{local}@example.com")


def _wait_for(server, needle: str, count: int = 1) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = server.log()
        if log.count(needle) >= count:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not logged:\n{server.log()[-3000:]}")


def test_tokens_in_urls_are_not_logged(make_server, backend):
    server = make_server(backend, LOG_LEVEL="info")
    anon = Api(server.url)
    account = signup(anon)
    # EventSource's way: the access token in ?token=.
    params = {"q": '{"notes": {}}', "token": account.access}
    stream = requests.get(server.url + "/api/subscribe", params=params, stream=True, timeout=15)
    assert stream.status_code == 200
    lines = stream.iter_lines(decode_unicode=True)
    assert next(lines) == "event: q-init"
    stream.close()
    # Errors are logged too (a warning), and other spellings of a token parameter.
    bad = requests.get(
        server.url + "/api/subscribe", params={"q": "{", "token": account.access}, timeout=5
    )
    assert bad.status_code == 400
    anon.get(f"/api/data/notes?access_token={account.refresh}&x=1")
    anon.get(f"/api/data/notes?a=1&refreshToken={account.refresh}")
    anon.get(f"/api/admin/stats?TOKEN={ADMIN_TOKEN}")
    log = _wait_for(server, "/api/subscribe?", 2)
    _wait_for(server, "?a=1&refreshToken=[redacted] ")
    assert account.access not in log and account.refresh not in log, log
    assert "token=[redacted]" in log and "access_token=[redacted]&x=1" in log
    assert ADMIN_TOKEN not in log


def test_mfa_verify_has_a_budget_per_address(make_server):
    """The limiter is in memory: SQLite only, as the other rate-limit tests."""
    server = make_server("sqlite", AUTH_RATE_LIMIT="3", TRUST_PROXY="true")
    anon = Api(server.url)

    def guess(ip: str) -> requests.Response:
        body = {"mfaToken": "mfa_" + uuid.uuid4().hex, "code": "123456"}  # a new token each
        return anon.post("/api/auth/mfa/verify", json=body, headers={"X-Forwarded-For": ip})

    for _ in range(3):
        assert guess("10.1.0.1").status_code == 401
    limited = guess("10.1.0.1")
    assert (limited.status_code, error_of(limited)["code"]) == (429, "RATE_LIMITED")
    assert int(limited.headers["Retry-After"]) == error_of(limited)["retryAfter"] >= 1
    assert guess("10.1.0.2").status_code == 401  # per address
