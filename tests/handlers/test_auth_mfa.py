"""TOTP MFA: enroll, enable, sign in with a code or a recovery code, replay refused,
disable; over real HTTP on both backends."""

from __future__ import annotations

import time

import pyotp
import pytest

from tests.handlers.accounts import PASSWORD, Account, signup
from tests.serverproc import Api, error_of

STEP = 30


def _code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + steps_ahead * STEP)


def _enable(account: Account) -> tuple[str, list[str]]:
    enrolled = account.api.post("/api/auth/mfa/enroll", json={"password": PASSWORD})
    assert enrolled.status_code == 200
    body = enrolled.json()
    assert set(body) == {"secret", "otpauthUrl"}
    assert body["otpauthUrl"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["otpauthUrl"]
    enabled = account.api.post(
        "/api/auth/mfa/enable", json={"code": _code(body["secret"]), "password": PASSWORD}
    )
    assert enabled.status_code == 200, enabled.text
    result = enabled.json()
    assert result["mfaEnabled"] is True
    assert len(result["recoveryCodes"]) == 10 == len(set(result["recoveryCodes"]))
    return body["secret"], result["recoveryCodes"]


def _mfa_token(anon: Api, account: Account) -> str:
    response = anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"mfaRequired", "mfaToken"} and body["mfaRequired"] is True
    return body["mfaToken"]


def _verify(anon: Api, mfa_token: str, code):
    return anon.post("/api/auth/mfa/verify", json={"mfaToken": mfa_token, "code": code})


def test_enable_then_sign_in_with_a_code_and_replay_is_refused(anon):
    account = signup(anon)
    secret, _ = _enable(account)
    assert account.api.get("/api/auth/me").json()["mfaEnabled"] is True
    # enabling spent the current step; the next step is within the drift allowance
    code = _code(secret, 1)
    verified = _verify(anon, _mfa_token(anon, account), code)
    assert verified.status_code == 200
    tokens = verified.json()
    assert set(tokens) == {"accessToken", "refreshToken"}
    assert anon.with_token(tokens["accessToken"]).get("/api/auth/me").status_code == 200
    # the same code (and every earlier step) is never accepted again
    for replay in (code, _code(secret)):
        refused = _verify(anon, _mfa_token(anon, account), replay)
        assert refused.status_code == 401
        assert error_of(refused)["code"] == "INVALID_CREDENTIALS"


def test_mfa_token_is_single_use(anon):
    account = signup(anon)
    _, recovery = _enable(account)
    mfa_token = _mfa_token(anon, account)
    assert _verify(anon, mfa_token, recovery[0]).status_code == 200
    again = _verify(anon, mfa_token, recovery[1])
    assert again.status_code == 401
    assert error_of(again)["code"] == "UNAUTHENTICATED"


def test_recovery_codes_work_once_each(anon):
    account = signup(anon)
    _, recovery = _enable(account)
    first = _verify(anon, _mfa_token(anon, account), recovery[0].upper())
    assert first.status_code == 200  # case and dashes are forgiven
    reused = _verify(anon, _mfa_token(anon, account), recovery[0])
    assert reused.status_code == 401
    assert error_of(reused)["code"] == "INVALID_CREDENTIALS"
    assert _verify(anon, _mfa_token(anon, account), recovery[1]).status_code == 200


def test_five_wrong_codes_spend_the_mfa_token(anon):
    account = signup(anon)
    _, recovery = _enable(account)
    mfa_token = _mfa_token(anon, account)
    for _ in range(5):
        wrong = _verify(anon, mfa_token, "000000")
        assert wrong.status_code == 401
        assert error_of(wrong)["code"] == "INVALID_CREDENTIALS"
    spent = _verify(anon, mfa_token, recovery[0])
    assert spent.status_code == 401
    assert error_of(spent)["code"] == "UNAUTHENTICATED"


def test_unknown_mfa_token_is_401(anon):
    response = _verify(anon, "mfa_temp_token_abc", "123456")
    assert response.status_code == 401
    assert error_of(response)["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "body",
    [
        {"mfaToken": "x", "code": 123456},
        {"mfaToken": "x", "code": None},
        {"mfaToken": 5, "code": "123456"},
        {"code": "123456"},
        {"mfaToken": "x", "code": ["123456"]},
    ],
)
def test_verify_bad_input_is_400(anon, body):
    response = anon.post("/api/auth/mfa/verify", json=body)
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_ARGUMENT"


def test_enable_needs_a_right_code_and_an_enrollment(anon):
    account = signup(anon)
    enable = "/api/auth/mfa/enable"
    not_enrolled = account.api.post(enable, json={"code": "123456", "password": PASSWORD})
    assert not_enrolled.status_code == 400
    enroll = account.api.post("/api/auth/mfa/enroll", json={"password": PASSWORD})
    secret = enroll.json()["secret"]
    wrong = account.api.post(enable, json={"code": "000000", "password": PASSWORD})
    assert wrong.status_code == 400
    bad_type = account.api.post(enable, json={"code": 123456, "password": PASSWORD})
    assert bad_type.status_code == 400
    assert account.api.get("/api/auth/me").json()["mfaEnabled"] is False
    ok = account.api.post(enable, json={"code": _code(secret), "password": PASSWORD})
    assert ok.status_code == 200
    twice = account.api.post("/api/auth/mfa/enroll", json={"password": PASSWORD})
    assert twice.status_code == 409
    assert error_of(twice)["code"] == "CONFLICT"


def test_disable_with_a_recovery_code(anon):
    account = signup(anon)
    _, recovery = _enable(account)
    disable = "/api/auth/mfa/disable"
    wrong = account.api.post(disable, json={"code": "not-a-code", "password": PASSWORD})
    assert wrong.status_code == 400
    off = account.api.post(disable, json={"code": recovery[3], "password": PASSWORD})
    assert off.status_code == 200 and off.json() == {"mfaEnabled": False}
    assert account.api.get("/api/auth/me").json()["mfaEnabled"] is False
    plain = anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD})
    assert set(plain.json()) == {"accessToken", "refreshToken"}
