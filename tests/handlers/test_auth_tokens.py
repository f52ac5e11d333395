"""Access and refresh tokens, sessions and sign-out, over real HTTP on both backends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.handlers.accounts import PASSWORD, signin, signup
from tests.serverproc import Api, error_of

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
FIREFOX_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"


def _unauthenticated(response) -> None:
    assert response.status_code == 401, response.text
    assert error_of(response)["code"] == "UNAUTHENTICATED"


def _refresh(anon: Api, token: str):
    return anon.post("/api/auth/refresh", json={"refreshToken": token})


def test_access_token_claims(server, anon):
    account = signup(anon)
    header = jwt.get_unverified_header(account.access)
    assert header["alg"] == "RS256" and header["kid"]
    jwks = anon.get("/.well-known/jwks.json").json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(key))
    claims = jwt.decode(account.access, public, algorithms=["RS256"], audience="actorbase")
    assert claims["sub"] == account.id and claims["iss"] == "actorbase"
    assert claims["sid"].startswith("sess_")
    assert claims["role"] == "user" and claims["claims"] == {}
    assert 890 <= claims["exp"] - claims["iat"] <= 900


def test_me_matches_the_seed(anon):
    account = signup(anon)
    me = account.api.get("/api/auth/me")
    assert me.status_code == 200
    body = me.json()
    assert set(body) == {"id", "email", "role", "claims", "mfaEnabled", "createdAt"}
    assert body["id"] == account.id and body["email"] == account.email
    assert body["role"] == "user" and body["claims"] == {} and body["mfaEnabled"] is False


def test_refresh_rotates_and_the_old_token_dies(anon):
    account = signup(anon)
    first = _refresh(anon, account.refresh)
    assert first.status_code == 200
    rotated = first.json()
    assert set(rotated) == {"accessToken", "refreshToken"}
    assert rotated["refreshToken"] != account.refresh
    assert anon.with_token(rotated["accessToken"]).get("/api/auth/me").status_code == 200
    second = _refresh(anon, rotated["refreshToken"])
    assert second.status_code == 200


def test_refresh_reuse_revokes_the_whole_family(anon):
    account = signup(anon)
    rotated = _refresh(anon, account.refresh).json()
    newer = _refresh(anon, rotated["refreshToken"]).json()
    # the first token again: a copy is in someone else's hands
    _unauthenticated(_refresh(anon, account.refresh))
    # every token descended from that sign-in is dead, access tokens included
    _unauthenticated(_refresh(anon, newer["refreshToken"]))
    _unauthenticated(anon.with_token(newer["accessToken"]).get("/api/auth/me"))
    _unauthenticated(account.api.get("/api/auth/me"))
    # another sign-in of the same user is unaffected
    assert "accessToken" in signin(anon, account.email)


@pytest.mark.parametrize("body", [{}, {"refreshToken": 5}, {"refreshToken": ""}, []])
def test_refresh_bad_input_is_400(anon, body):
    response = anon.post("/api/auth/refresh", json=body)
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_ARGUMENT"


def test_unknown_refresh_token_is_401(anon):
    _unauthenticated(_refresh(anon, "not-a-token"))


def test_signout_ends_the_session_at_once(anon):
    account = signup(anon)
    other = signin(anon, account.email)
    out = account.api.post("/api/auth/signout")
    assert out.status_code == 204 and out.content == b""
    _unauthenticated(account.api.get("/api/auth/me"))
    _unauthenticated(_refresh(anon, account.refresh))
    assert anon.with_token(other["accessToken"]).get("/api/auth/me").status_code == 200


def test_sessions_list_devices_and_the_current_one(anon):
    account = signup(anon, headers={"User-Agent": CHROME_MAC})
    firefox = signin(anon, account.email, headers={"User-Agent": FIREFOX_WIN})
    curl = signin(anon, account.email, headers={"User-Agent": "curl/8.5.0"})
    listed = anon.with_token(curl["accessToken"]).get("/api/auth/sessions")
    assert listed.status_code == 200
    sessions = listed.json()["sessions"]
    assert len(sessions) == 3
    for s in sessions:
        assert set(s) == {"id", "device", "ip", "lastUsedAt", "current"}
        assert s["id"].startswith("sess_") and s["ip"] == "127.0.0.1"
    assert sorted(s["device"] for s in sessions) == [
        "Chrome on macOS",
        "Firefox on Windows",
        "curl",
    ]
    current = [s for s in sessions if s["current"]]
    assert [s["device"] for s in current] == ["curl"]

    # revoke the Firefox one from the curl session
    firefox_sid = jwt.decode(firefox["accessToken"], options={"verify_signature": False})["sid"]
    gone = anon.with_token(curl["accessToken"]).delete(f"/api/auth/sessions/{firefox_sid}")
    assert gone.status_code == 204
    _unauthenticated(anon.with_token(firefox["accessToken"]).get("/api/auth/me"))
    _unauthenticated(_refresh(anon, firefox["refreshToken"]))
    left = account.api.get("/api/auth/sessions").json()["sessions"]
    assert len(left) == 2


def test_another_users_session_is_404(anon):
    alice, bob = signup(anon), signup(anon)
    bob_sid = jwt.decode(bob.access, options={"verify_signature": False})["sid"]
    response = alice.api.delete(f"/api/auth/sessions/{bob_sid}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "NOT_FOUND"
    assert bob.api.get("/api/auth/me").status_code == 200


def test_trusted_proxy_sets_the_session_ip(make_server, backend):
    server = make_server(backend, TRUST_PROXY="true")
    anon = Api(server.url)
    account = signup(anon, headers={"X-Forwarded-For": "1.2.3.4"})
    sessions = account.api.get("/api/auth/sessions").json()["sessions"]
    assert [s["ip"] for s in sessions] == ["1.2.3.4"]


def test_password_change_revokes_other_sessions(anon):
    account = signup(anon)
    other = signin(anon, account.email)
    new_password = "a much better passphrase"
    wrong = account.api.post(
        "/api/auth/password", json={"currentPassword": "wrong-one", "newPassword": new_password}
    )
    assert wrong.status_code == 401
    assert error_of(wrong)["code"] == "INVALID_CREDENTIALS"
    weak = account.api.post(
        "/api/auth/password", json={"currentPassword": PASSWORD, "newPassword": "password1"}
    )
    assert weak.status_code == 400
    changed = account.api.post(
        "/api/auth/password", json={"currentPassword": PASSWORD, "newPassword": new_password}
    )
    assert changed.status_code == 204
    assert account.api.get("/api/auth/me").status_code == 200  # this session stays
    _unauthenticated(anon.with_token(other["accessToken"]).get("/api/auth/me"))
    _unauthenticated(_refresh(anon, other["refreshToken"]))
    old = anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD})
    assert old.status_code == 401
    assert "accessToken" in signin(anon, account.email, new_password)


def test_user_endpoints_need_a_user_token(anon, admin):
    for method, path in [
        ("GET", "/api/auth/me"),
        ("GET", "/api/auth/sessions"),
        ("POST", "/api/auth/signout"),
        ("POST", "/api/auth/mfa/enroll"),
    ]:
        _unauthenticated(anon.request(method, path))
        denied = admin.request(method, path)
        assert denied.status_code == 403
        assert error_of(denied)["code"] == "PERMISSION_DENIED"


# -- item 9: every bad token is 401 UNAUTHENTICATED -------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict, payload: dict, sign) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


@pytest.fixture(scope="module")
def victim(server) -> dict:
    account = signup(Api(server.url))
    header = jwt.get_unverified_header(account.access)
    payload = jwt.decode(account.access, options={"verify_signature": False})
    pem = server.sql("SELECT value FROM ab_secrets WHERE name = 'jwt_private_key.pem'")[0][0]
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "account": account,
        "header": header,
        "payload": payload,
        "key": key,
        "public_pem": public_pem,
    }


def _with(victim: dict, **changes) -> str:
    """The victim's token re-signed with the server's own key, claims changed."""
    payload = {**victim["payload"], **changes}
    return jwt.encode(
        payload, victim["key"], algorithm="RS256", headers={"kid": victim["header"]["kid"]}
    )


def _bad_tokens(victim: dict) -> dict[str, str]:
    good = victim["account"].access
    head, _, sig = good.split(".")
    escalated = _b64(json.dumps({**victim["payload"], "role": "admin"}).encode())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = victim["header"]["kid"]
    now = int(time.time())
    return {
        "garbage": "not.a.jwt",
        "random": "abc",
        "expired": _with(victim, iat=now - 7200, exp=now - 3600),
        "wrong issuer": _with(victim, iss="someone-else"),
        "wrong audience": _with(victim, aud="someone-else"),
        "no exp": jwt.encode(
            {k: v for k, v in victim["payload"].items() if k != "exp"},
            victim["key"],
            algorithm="RS256",
            headers={"kid": kid},
        ),
        "tampered payload": f"{head}.{escalated}.{sig}",
        "wrongly signed": jwt.encode(
            victim["payload"], other_key, algorithm="RS256", headers={"kid": kid}
        ),
        "alg none": _forge(
            {"alg": "none", "typ": "JWT", "kid": kid}, victim["payload"], lambda _: b""
        ),
        "hs256 with the public key": _forge(
            {"alg": "HS256", "typ": "JWT", "kid": kid},
            victim["payload"],
            lambda data: hmac.new(victim["public_pem"], data, hashlib.sha256).digest(),
        ),
        "refresh token as access": victim["account"].refresh,
        "unknown session": _with(victim, sid="sess_doesnotexist"),
        "session of another user": _with(victim, sub="usr_someoneelse"),
    }


def test_the_victims_token_itself_works(victim, anon):
    assert victim["account"].api.get("/api/auth/me").status_code == 200
    resigned = _with(victim)
    assert anon.with_token(resigned).get("/api/auth/me").status_code == 200


@pytest.mark.parametrize(
    "kind",
    [
        "garbage",
        "random",
        "expired",
        "wrong issuer",
        "wrong audience",
        "no exp",
        "tampered payload",
        "wrongly signed",
        "alg none",
        "hs256 with the public key",
        "refresh token as access",
        "unknown session",
        "session of another user",
    ],
)
def test_bad_tokens_are_401(victim, anon, kind):
    token = _bad_tokens(victim)[kind]
    _unauthenticated(anon.with_token(token).get("/api/auth/me"))
    _unauthenticated(anon.with_token(token).get("/api/data/todos"))


def test_malformed_authorization_header_is_not_a_token(anon):
    response = anon.get("/api/auth/me", headers={"Authorization": "Basic abc"})
    _unauthenticated(response)
