"""Rate-limit policies over real HTTP, each with a low budget: general API per user or
IP, sign-up/sign-in per IP and per email, MFA verify per token, uploads per user; the
X-RateLimit-* headers show the budget that applied, and 429 RATE_LIMITED carries
retryAfter and Retry-After.

The limiter is in memory and never touches the store, so these run on SQLite only.
TRUST_PROXY lets a test speak from several addresses through X-Forwarded-For.
"""

from __future__ import annotations

import time
import uuid

import requests

from tests.handlers.accounts import PASSWORD, new_email, signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of

HIGH = "100000"


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


def assert_limited(response: requests.Response, limit: int) -> None:
    error = error_of(response)
    assert (response.status_code, error["code"]) == (429, "RATE_LIMITED")
    assert error["retryAfter"] >= 1
    assert int(response.headers["Retry-After"]) == error["retryAfter"]
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"


def assert_headers(response: requests.Response, limit: int, remaining: int) -> None:
    assert response.headers["X-RateLimit-Limit"] == str(limit), response.headers
    assert response.headers["X-RateLimit-Remaining"] == str(remaining)
    reset = int(response.headers["X-RateLimit-Reset"])
    assert time.time() - 1 <= reset <= time.time() + 61  # Unix seconds, within the window


def test_general_api_per_user_and_per_ip(make_server):
    server = make_server("sqlite", RATE_LIMIT="3", TRUST_PROXY="true")
    anon = Api(server.url)
    alice, bob = signup(anon), signup(anon)  # sign-up spends the auth budget, not this one
    for remaining in (2, 1, 0):
        assert_headers(alice.api.get("/api/auth/me"), 3, remaining)
    assert_limited(alice.api.get("/api/auth/me"), 3)
    assert_limited(alice.api.get("/api/data/x"), 3)  # every API route shares the budget
    assert bob.api.get("/api/auth/me").status_code == 200  # per user
    for _ in range(3):
        assert anon.get("/api/data/x", headers=from_ip("10.0.0.1")).status_code == 401
    assert_limited(anon.get("/api/data/x", headers=from_ip("10.0.0.1")), 3)
    assert anon.get("/api/data/x", headers=from_ip("10.0.0.2")).status_code == 401  # per IP


def test_signup_and_signin_per_ip(make_server):
    server = make_server(
        "sqlite", AUTH_RATE_LIMIT="3", AUTH_EMAIL_RATE_LIMIT=HIGH, TRUST_PROXY="true"
    )
    anon = Api(server.url)
    account = signup(anon, headers=from_ip("10.0.1.1"))
    response = anon.post(
        "/api/auth/signin",
        json={"email": account.email, "password": PASSWORD},
        headers=from_ip("10.0.1.1"),
    )
    assert response.status_code == 200
    assert_headers(response, 3, 1)
    signup(anon, headers=from_ip("10.0.1.1"))
    body = {"email": new_email(), "password": PASSWORD}
    assert_limited(anon.post("/api/auth/signup", json=body, headers=from_ip("10.0.1.1")), 3)
    assert anon.post("/api/auth/signup", json=body, headers=from_ip("10.0.1.2")).status_code == 201
    # The general API budget is untouched by sign-ups.
    me = account.api.get("/api/auth/me", headers=from_ip("10.0.1.1"))
    assert me.headers["X-RateLimit-Limit"] == HIGH


def test_signin_per_email_across_addresses(make_server):
    server = make_server(
        "sqlite", AUTH_RATE_LIMIT=HIGH, AUTH_EMAIL_RATE_LIMIT="2", TRUST_PROXY="true"
    )
    anon = Api(server.url)
    email = new_email()
    wrong = {"email": email, "password": "not the password"}
    for n, ip in enumerate(("10.0.2.1", "10.0.2.2")):
        response = anon.post("/api/auth/signin", json=wrong, headers=from_ip(ip))
        assert error_of(response)["code"] == "INVALID_CREDENTIALS"
        assert_headers(response, 2, 1 - n)
    # A third address does not help, nor does another spelling of the same email.
    shouted = {**wrong, "email": email.upper()}
    assert_limited(anon.post("/api/auth/signin", json=shouted, headers=from_ip("10.0.2.3")), 2)
    other = {"email": new_email(), "password": "not the password"}
    response = anon.post("/api/auth/signin", json=other, headers=from_ip("10.0.2.3"))
    assert response.status_code == 401


def test_mfa_verify_per_token(make_server):
    server = make_server("sqlite", MFA_RATE_LIMIT="2")
    anon = Api(server.url)
    guess = {"mfaToken": "mfa_" + uuid.uuid4().hex, "code": "123456"}
    for remaining in (1, 0):
        response = anon.post("/api/auth/mfa/verify", json=guess)
        assert response.status_code == 401, response.text
        assert_headers(response, 2, remaining)
    assert_limited(anon.post("/api/auth/mfa/verify", json=guess), 2)
    fresh = {"mfaToken": "mfa_" + uuid.uuid4().hex, "code": "123456"}
    assert anon.post("/api/auth/mfa/verify", json=fresh).status_code == 401


def test_uploads_have_their_own_budget(make_server):
    server = make_server("sqlite", UPLOAD_RATE_LIMIT="2")
    admin = Api(server.url, ADMIN_TOKEN)

    def upload(path: str) -> requests.Response:
        return admin.post(
            "/api/storage/upload",
            files={"file": ("a.txt", b"hi", "text/plain")},
            data={"path": path},
        )

    first = upload("rl/a.txt")
    assert first.status_code == 201, first.text
    assert_headers(first, 2, 1)
    assert upload("rl/b.txt").status_code == 201
    assert_limited(upload("rl/c.txt"), 2)
    listed = admin.get("/api/storage")
    assert listed.status_code == 200 and listed.headers["X-RateLimit-Limit"] == HIGH


def test_defaults_let_people_in_and_stop_guessing_scripts(make_server):
    defaults = {
        "AUTH_RATE_LIMIT": "120",
        "AUTH_EMAIL_RATE_LIMIT": "20",
        "MFA_RATE_LIMIT": "10",
        "UPLOAD_RATE_LIMIT": "60",
    }
    server = make_server("sqlite", **defaults)
    anon = Api(server.url)
    # A test suite from one address: three dozen sign-ups, each signing in once.
    for _ in range(36):
        account = signup(anon)
        body = {"email": account.email, "password": PASSWORD}
        assert anon.post("/api/auth/signin", json=body).status_code == 200
    # A script guessing passwords across accounts from the same address is stopped.
    codes = set()
    for _ in range(100):
        body = {"email": new_email(), "password": "guess-" + uuid.uuid4().hex[:6]}
        response = anon.post("/api/auth/signin", json=body)
        codes.add(error_of(response)["code"])
    assert "RATE_LIMITED" in codes
