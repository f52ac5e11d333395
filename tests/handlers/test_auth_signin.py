"""Sign-up, sign-in, enumeration resistance and lockout, over real HTTP on both backends."""

from __future__ import annotations

import re
import time

import pytest

from tests.handlers.accounts import PASSWORD, new_email, signin, signup
from tests.serverproc import Api, error_of

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_signup_returns_the_seed_shape(anon):
    email = new_email()
    response = anon.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "accessToken", "refreshToken"}
    assert set(body["user"]) == {"id", "email", "createdAt"}
    assert body["user"]["id"].startswith("usr_")
    assert body["user"]["email"] == email
    assert ISO_UTC.match(body["user"]["createdAt"])
    assert body["accessToken"].count(".") == 2 and body["refreshToken"]


def test_emails_are_unique_case_insensitively(anon):
    email = new_email()
    signup(anon, email)
    taken = anon.post("/api/auth/signup", json={"email": email.upper(), "password": PASSWORD})
    assert taken.status_code == 409
    assert error_of(taken)["code"] == "CONFLICT"
    # and sign-in ignores case too
    assert "accessToken" in signin(anon, email.upper())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "a b@example.com", "password": PASSWORD}, "email"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": ["x@example.com"], "password": PASSWORD}, "email"),
        ({"password": PASSWORD}, "email"),
        ({"email": "ok@example.com"}, "password"),
        ({"email": "ok@example.com", "password": 12345678}, "password"),
        ({"email": "ok@example.com", "password": None}, "password"),
        ({"email": "ok@example.com", "password": "Sh0rt!"}, "password"),
        ({"email": "ok@example.com", "password": "x" * 73}, "password"),
        # 25 three-byte characters: 25 characters but 75 bytes, over bcrypt's 72
        ({"email": "ok@example.com", "password": "€" * 25}, "password"),
        ({"email": "ok@example.com", "password": "password123"}, "password"),
        ({"email": "ok@example.com", "password": "Baseball1"}, "password"),
    ],
)
def test_signup_rejects_bad_input_with_400(anon, body, field):
    response = anon.post("/api/auth/signup", json=body)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["message"].startswith(field)


def test_signup_takes_72_bytes_exactly(anon):
    password = "€" * 24  # 72 bytes
    account = signup(anon, password=password)
    assert "accessToken" in signin(anon, account.email, password)
    # one more byte than bcrypt reads would be a different password, not a truncation
    wrong = anon.post("/api/auth/signin", json={"email": account.email, "password": password + "x"})
    assert wrong.status_code == 400


@pytest.mark.parametrize("body", [[], "x", {"email": {}, "password": "x"}, {"password": []}])
def test_signin_rejects_malformed_bodies_with_400(anon, body):
    response = anon.post("/api/auth/signin", json=body)
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_ARGUMENT"


def test_signin_not_json_is_400(anon):
    response = anon.post(
        "/api/auth/signin", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_ARGUMENT"


def test_signin_returns_tokens(anon):
    account = signup(anon)
    body = signin(anon, account.email)
    assert set(body) == {"accessToken", "refreshToken"}
    me = anon.with_token(body["accessToken"]).get("/api/auth/me")
    assert me.status_code == 200 and me.json()["id"] == account.id


def test_unknown_email_and_wrong_password_look_the_same(anon):
    account = signup(anon)
    wrong = anon.post("/api/auth/signin", json={"email": account.email, "password": "nope-nope"})
    unknown = anon.post("/api/auth/signin", json={"email": new_email(), "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "error": {
                "code": "INVALID_CREDENTIALS",
                "message": "Invalid email or password",
                "status": 401,
            }
        }
    )


@pytest.fixture(scope="module")
def strict(make_module_server, backend):
    """A server that locks after 3 failures, for 2 seconds."""
    return make_module_server(backend, LOCKOUT_THRESHOLD="3", LOCKOUT_SECONDS="2")


def _attempt(api: Api, email: str, password: str):
    return api.post("/api/auth/signin", json={"email": email, "password": password})


def test_lockout_refuses_even_the_right_password_then_expires(strict):
    api = Api(strict.url)
    account = signup(api)
    for _ in range(3):
        assert _attempt(api, account.email, "wrong-password").status_code == 401
    locked = _attempt(api, account.email, PASSWORD)
    assert locked.status_code == 429
    error = error_of(locked)
    assert error["code"] == "ACCOUNT_LOCKED"
    assert error["message"] == (
        "Account locked due to too many failed attempts. Try again in 1 minute."
    )
    assert error["retryAfter"] in (1, 2)
    assert locked.headers["Retry-After"] == str(error["retryAfter"])
    time.sleep(2.1)
    assert _attempt(api, account.email, PASSWORD).status_code == 200


def test_lockout_applies_to_unknown_emails_alike(strict):
    api = Api(strict.url)
    email = new_email()
    for _ in range(3):
        assert _attempt(api, email, "wrong-password").status_code == 401
    locked = _attempt(api, email, "wrong-password")
    assert locked.status_code == 429
    assert error_of(locked)["code"] == "ACCOUNT_LOCKED"


def test_success_resets_the_failure_count(strict):
    api = Api(strict.url)
    account = signup(api)
    for _ in range(2):
        assert _attempt(api, account.email, "wrong-password").status_code == 401
    assert _attempt(api, account.email, PASSWORD).status_code == 200
    for _ in range(2):
        assert _attempt(api, account.email, "wrong-password").status_code == 401
    assert _attempt(api, account.email, PASSWORD).status_code == 200


def test_lockout_message_counts_minutes_by_default(anon):
    account = signup(anon)
    for _ in range(5):
        assert _attempt(anon, account.email, "wrong-password").status_code == 401
    locked = _attempt(anon, account.email, PASSWORD)
    error = error_of(locked)
    assert error["code"] == "ACCOUNT_LOCKED"
    assert 1790 <= error["retryAfter"] <= 1800
    assert error["message"].endswith("Try again in 30 minutes.")


def test_sweep_deletes_spent_counters_and_expired_challenges_only(make_server, backend):
    """SWEEP_INTERVAL=0.2: a counter whose window passed goes (an unknown email's too),
    a locked email's stays and stays locked, an expired MFA challenge goes."""
    server = make_server(
        backend,
        LOCKOUT_THRESHOLD="2",
        LOCKOUT_WINDOW="1",
        LOCKOUT_SECONDS="60",
        SWEEP_INTERVAL="0.2",
    )
    api = Api(server.url)
    spent, locked = new_email(), new_email()
    assert _attempt(api, spent, "wrong-password").status_code == 401
    for _ in range(3):
        _attempt(api, locked, "wrong-password")
    assert _attempt(api, locked, "wrong-password").status_code == 429
    account = signup(api)
    server.sql(
        "INSERT INTO ab_mfa_challenges (token_hash, user_id, device, ip, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        ("expired-challenge", account.id, "test", "127.0.0.1", 1),
    )

    def counters() -> set[str]:
        return {r[0] for r in server.sql("SELECT email_lower FROM ab_signin_attempts")}

    assert {spent, locked} <= counters()
    deadline = time.monotonic() + 10
    while spent in counters() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert spent not in counters() and locked in counters()
    assert server.sql("SELECT token_hash FROM ab_mfa_challenges") == []
    assert _attempt(api, locked, "wrong-password").status_code == 429
