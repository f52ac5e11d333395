"""Signing-key rotation with the real `actorbase keys rotate` while servers run: old
tokens and signed URLs stay valid until they expire, new ones use the new key, an
unknown kid is refused, retired keys leave the JWKS, and on PostgreSQL a process that
has not yet reloaded accepts a token another process signed with the new key."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.handlers.accounts import signin, signup
from tests.serverproc import (
    ADMIN_TOKEN,
    Api,
    ServerProcess,
    error_of,
    nodes_on_one_database,
)

FAST_RELOAD = {"KEY_RELOAD_INTERVAL": "0.3"}


def rotate(server: ServerProcess, *flags: str) -> str:
    """Run the command as an operator would, against the server's database; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "actorbase", "keys", "rotate", *flags],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def eventually(check: Callable[[], object], what: str, timeout: float = 10) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def kids(server: ServerProcess) -> list[str]:
    jwks = requests.get(server.url + "/.well-known/jwks.json", timeout=30).json()
    return [key["kid"] for key in jwks["keys"]]


def kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def upload(server: ServerProcess, path: str) -> str:
    created = Api(server.url, ADMIN_TOKEN).post(
        "/api/storage/upload",
        files={"file": ("f", b"rotated bytes", "text/plain")},
        data={"path": path},
    )
    assert created.status_code == 201, created.text
    return created.json()["url"]


def signed_url(server: ServerProcess, path: str) -> str:
    response = Api(server.url, ADMIN_TOKEN).get(f"/api/storage/{path}")
    assert response.status_code == 200, response.text
    return response.json()["url"]


def version_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["v"][0]


def on(server: ServerProcess, url: str) -> str:
    """`url` pointed at `server`."""
    return urlunsplit(urlsplit(url)._replace(netloc=urlsplit(server.url).netloc))


def me(server: ServerProcess, token: str) -> requests.Response:
    return Api(server.url, token).get("/api/auth/me")


def test_rotating_while_serving_keeps_old_tokens_and_signs_new_ones(make_server, backend):
    server = make_server(backend, **FAST_RELOAD)
    account = signup(Api(server.url))
    old_kid = kid(account.access)
    assert kids(server) == [old_kid]

    out = rotate(server)
    assert "version 1" in out
    both = eventually(lambda: len(kids(server)) == 2 and kids(server), "JWKS has both keys")
    assert old_kid in both
    new_kid = next(k for k in both if k != old_kid)
    assert new_kid in out
    assert me(server, account.access).status_code == 200

    fresh = signin(Api(server.url), account.email)["accessToken"]
    assert kid(fresh) == new_kid
    assert me(server, fresh).json()["id"] == account.id
    # A refreshed token is signed with the new key too.
    refreshed = Api(server.url).post("/api/auth/refresh", json={"refreshToken": account.refresh})
    assert kid(refreshed.json()["accessToken"]) == new_kid


def test_a_token_with_an_unknown_kid_is_refused(make_server, backend):
    server = make_server(backend, **FAST_RELOAD)
    account = signup(Api(server.url))
    payload = jwt.decode(account.access, options={"verify_signature": False})
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for name in ("not-a-key-we-have", "x" * 500):
        forged = jwt.encode(payload, stranger, algorithm="RS256", headers={"kid": name})
        refused = me(server, forged)
        assert refused.status_code == 401
        assert error_of(refused)["code"] == "UNAUTHENTICATED"
    # Still served afterwards, and the real token is still good.
    assert me(server, account.access).status_code == 200


def test_rotating_the_url_key_keeps_old_signed_urls(make_server, backend):
    server = make_server(backend, **FAST_RELOAD)
    old_url = upload(server, "keys/a.txt")
    assert version_of(old_url) == "0"
    # A URL from before `v` existed is one signed with key 0.
    legacy = urlsplit(old_url)
    query = "&".join(p for p in legacy.query.split("&") if not p.startswith("v="))
    legacy_url = urlunsplit(legacy._replace(query=query))

    assert "URL-signing key version 1" in rotate(server, "--url")

    def signed_with_key_1() -> str | None:
        url = signed_url(server, "keys/a.txt")
        return url if version_of(url) == "1" else None

    new_url = str(eventually(signed_with_key_1, "new signed URLs use key 1"))
    for url in (old_url, legacy_url, new_url):
        got = requests.get(url, timeout=30)
        assert (got.status_code, got.content) == (200, b"rotated bytes"), url
    # The access-token key was left alone.
    assert len(kids(server)) == 1
    # A URL naming a key nobody has, or signed with another key than it names.
    for version in ("7", "0"):
        forged = new_url.replace("&v=1&", f"&v={version}&")
        assert forged != new_url
        refused = requests.get(forged, timeout=30)
        assert refused.status_code == 403
        assert error_of(refused)["code"] == "PERMISSION_DENIED"


def test_a_retired_key_leaves_the_jwks_and_its_tokens_are_refused(make_server, backend):
    server = make_server(backend, **FAST_RELOAD)
    account = signup(Api(server.url))
    rotate(server)
    eventually(lambda: len(kids(server)) == 2, "JWKS has both keys")
    # As if the rotation was made longer ago than any token of key 0 can live.
    server.sql("UPDATE ab_keys SET created_at = created_at - 86400000 WHERE version = 1")
    eventually(lambda: kids(server) != [kid(account.access)] and len(kids(server)) == 1, "retired")
    refused = me(server, account.access)
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "UNAUTHENTICATED"
    fresh = signin(Api(server.url), account.email)["accessToken"]
    assert kids(server) == [kid(fresh)]
    assert me(server, fresh).status_code == 200
    # Rotating again deletes version 1's row only once version 2 is past its grace too.
    rotate(server)
    server.sql("UPDATE ab_keys SET created_at = created_at - 86400000 WHERE version = 2")
    assert "deleted retired versions [1]" in rotate(server)
    assert server.sql("SELECT version FROM ab_keys WHERE purpose = 'jwt' ORDER BY 1") == [
        (2,),
        (3,),
    ]


def test_rotation_fails_with_one_line_where_it_cannot_run(tmp_path: Path):
    fresh = ServerProcess(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh' / 'a.db'}")
    configured = ServerProcess(
        tmp_path / "configured", fresh.database_url, JWT_PRIVATE_KEY="anything"
    )
    for server, message in (
        (fresh, "is not migrated for key rotation"),
        (configured, "JWT_PRIVATE_KEY is set"),
    ):
        server.data_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "actorbase", "keys", "rotate"],
            env=server.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert message in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.fixture
def nodes(pg_base_url, tmp_path):
    """Two processes on one PostgreSQL database sharing a storage directory: `a`
    reloads its keys often, `b` only when it meets a key it does not know."""
    storage = f"file://{tmp_path / 'shared-storage'}"
    a_env = {"STORAGE_URL": storage, **FAST_RELOAD}
    b_env = {"STORAGE_URL": storage, "KEY_RELOAD_INTERVAL": "3600"}
    with nodes_on_one_database(pg_base_url, tmp_path, a_env, b_env) as (_, nodes):
        yield nodes[0], nodes[1]


def test_a_token_signed_after_rotation_on_one_node_is_accepted_on_another(nodes):
    a, b = nodes
    account = signup(Api(a.url))
    old_kid = kid(account.access)
    # URL key first: a reload that shows a's second token key (one snapshot of both
    # rings) then has the new URL key too.
    rotate(a, "--url")
    rotate(a)
    eventually(lambda: len(kids(a)) == 2, "node a has both keys")
    assert kids(b) == [old_kid]  # b has not reloaded yet

    fresh = signin(Api(a.url), account.email)["accessToken"]
    assert kid(fresh) != old_kid
    on_b = me(b, fresh)
    assert on_b.status_code == 200, on_b.text
    assert on_b.json()["id"] == account.id
    assert sorted(kids(b)) == sorted(kids(a))  # b reloaded for the kid it did not know
    assert me(b, account.access).status_code == 200

    url = upload(a, "keys/shared.txt")
    assert version_of(url) == "1"
    got = requests.get(on(b, url), timeout=30)
    assert (got.status_code, got.content) == (200, b"rotated bytes")
