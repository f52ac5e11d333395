"""MFA hardening over real HTTP on both backends: wrong codes count per account in the
sign-in lockout (a right password does not reset them), enroll/enable/disable need
the password, and enabling ends the other sessions."""

from __future__ import annotations

import pyotp
import pytest
import requests

from tests.handlers.accounts import PASSWORD, Account, signin, signup
from tests.serverproc import Api, error_of

THRESHOLD = 3


@pytest.fixture(scope="module")
def server(make_module_server, backend):
    return make_module_server(backend, LOCKOUT_THRESHOLD=str(THRESHOLD))


def _enable(account: Account) -> tuple[str, list[str]]:
    secret = account.api.post("/api/auth/mfa/enroll", json={"password": PASSWORD}).json()["secret"]
    code = pyotp.TOTP(secret).now()
    enabled = account.api.post("/api/auth/mfa/enable", json={"code": code, "password": PASSWORD})
    assert enabled.status_code == 200, enabled.text
    return secret, enabled.json()["recoveryCodes"]


def _mfa_token(anon: Api, account: Account) -> str:
    return signin(anon, account.email)["mfaToken"]


def _verify(anon: Api, mfa_token: str, code: str) -> requests.Response:
    return anon.post("/api/auth/mfa/verify", json={"mfaToken": mfa_token, "code": code})


def _wrong(response: requests.Response, status: int = 401, code: str = "INVALID_CREDENTIALS"):
    assert (response.status_code, error_of(response)["code"]) == (status, code), response.text


def _locked(response: requests.Response) -> None:
    _wrong(response, 429, "ACCOUNT_LOCKED")
    assert int(response.headers["Retry-After"]) == error_of(response)["retryAfter"] >= 1


def test_wrong_codes_lock_the_account_even_for_the_right_password(server):
    anon = Api(server.url)
    account = signup(anon)
    _, recovery = _enable(account)
    mfa_token = _mfa_token(anon, account)
    for _ in range(THRESHOLD):
        _wrong(_verify(anon, mfa_token, "000000"))
    _locked(_verify(anon, mfa_token, recovery[0]))  # the right code too
    _locked(anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD}))


def test_a_right_password_does_not_reset_wrong_codes(server):
    anon = Api(server.url)
    account = signup(anon)
    _enable(account)
    for _ in range(THRESHOLD - 1):
        _wrong(_verify(anon, _mfa_token(anon, account), "000000"))
    # A fresh sign-in (right password) gets a fresh mfaToken but the same count.
    _wrong(_verify(anon, _mfa_token(anon, account), "000000"))
    _locked(anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD}))


def test_a_right_code_clears_the_failures(server):
    anon = Api(server.url)
    account = signup(anon)
    _, recovery = _enable(account)
    for code in recovery[:2]:
        for _ in range(THRESHOLD - 1):
            _wrong(_verify(anon, _mfa_token(anon, account), "000000"))
        assert _verify(anon, _mfa_token(anon, account), code).status_code == 200


def test_wrong_passwords_and_wrong_codes_count_together(server):
    anon = Api(server.url)
    account = signup(anon)
    _enable(account)
    wrong = {"email": account.email, "password": "not the password"}
    for _ in range(THRESHOLD - 1):
        _wrong(anon.post("/api/auth/signin", json=wrong))
    _wrong(_verify(anon, _mfa_token(anon, account), "000000"))
    _locked(anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD}))


@pytest.mark.parametrize("path", ["enroll", "enable", "disable"])
def test_mfa_changes_need_the_password(server, path):
    anon = Api(server.url)
    account = signup(anon)
    url = f"/api/auth/mfa/{path}"
    code = {} if path == "enroll" else {"code": "123456"}
    _wrong(account.api.post(url, json=code), 400, "INVALID_ARGUMENT")
    _wrong(account.api.post(url, json={**code, "password": 5}), 400, "INVALID_ARGUMENT")
    for _ in range(THRESHOLD):
        _wrong(account.api.post(url, json={**code, "password": "not the password"}))
    _locked(account.api.post(url, json={**code, "password": PASSWORD}))  # counted
    _locked(anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD}))
    assert account.api.get("/api/auth/me").json()["mfaEnabled"] is False


def test_wrong_codes_to_disable_count_too(server):
    anon = Api(server.url)
    account = signup(anon)
    _enable(account)
    for _ in range(THRESHOLD):
        off = account.api.post(
            "/api/auth/mfa/disable", json={"code": "000000", "password": PASSWORD}
        )
        _wrong(off, 400, "INVALID_ARGUMENT")
    _locked(anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD}))
    assert account.api.get("/api/auth/me").json()["mfaEnabled"] is True


def test_enabling_ends_the_other_sessions(server):
    anon = Api(server.url)
    account = signup(anon)
    other = signin(anon, account.email)
    other_api = anon.with_token(other["accessToken"])
    assert other_api.get("/api/auth/me").status_code == 200
    _enable(account)
    _wrong(other_api.get("/api/auth/me"), 401, "UNAUTHENTICATED")
    refreshed = anon.post("/api/auth/refresh", json={"refreshToken": other["refreshToken"]})
    _wrong(refreshed, 401, "UNAUTHENTICATED")
    assert account.api.get("/api/auth/me").json()["mfaEnabled"] is True  # this one stays
    sessions = account.api.get("/api/auth/sessions").json()["sessions"]
    assert [s["current"] for s in sessions] == [True]


def test_disabling_keeps_the_sessions_and_takes_a_recovery_code(server):
    anon = Api(server.url)
    account = signup(anon)
    _, recovery = _enable(account)
    off = account.api.post(
        "/api/auth/mfa/disable", json={"code": recovery[0], "password": PASSWORD}
    )
    assert off.status_code == 200 and off.json() == {"mfaEnabled": False}
    assert "accessToken" in signin(anon, account.email)
