"""Generated signing keys live in the database: processes on one PostgreSQL database,
each with its own DATA_DIR (separate dynos), accept each other's access tokens and
signed file URLs with no JWT_PRIVATE_KEY configured."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from store.tokens import _generate_pem
from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, PostgresDatabase, ServerProcess

LOCAL_FILES_WARNING = "PostgreSQL with local file storage"


@pytest.fixture
def dynos(pg_base_url, tmp_path):
    """Two processes on one database, each with its own DATA_DIR, sharing one storage
    directory (as S3 would be shared; local storage is served by actorbase itself)."""
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    db = PostgresDatabase(pg_base_url)
    storage = f"file://{tmp_path / 'shared-storage'}"
    nodes = [ServerProcess(tmp_path / n, db.url, STORAGE_URL=storage) for n in ("a", "b")]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            if node.proc is not None:
                node.stop()
        db.drop()


def test_a_token_from_one_process_works_on_another(dynos):
    a, b = dynos
    account = signup(Api(a.url))
    me = Api(b.url, account.access).get("/api/auth/me")
    assert me.status_code == 200, me.text
    assert me.json()["id"] == account.id
    jwks = [requests.get(n.url + "/.well-known/jwks.json", timeout=30).json() for n in dynos]
    assert jwks[0] == jwks[1]


def test_a_signed_url_from_one_process_downloads_on_another(dynos):
    a, b = dynos
    created = Api(a.url, ADMIN_TOKEN).post(
        "/api/storage/upload",
        files={"file": ("f", b"shared bytes", "text/plain")},
        data={"path": "dyno/shared.txt"},
    )
    assert created.status_code == 201, created.text
    url = urlsplit(created.json()["url"])
    on_b = urlunsplit(url._replace(netloc=urlsplit(b.url).netloc))
    got = requests.get(on_b, timeout=30)
    assert (got.status_code, got.content) == (200, b"shared bytes")


def test_local_storage_on_postgresql_is_warned_about(dynos):
    assert LOCAL_FILES_WARNING in dynos[0].log()


def test_jwt_private_key_overrides_the_kept_key(make_server, backend):
    pem = _generate_pem()
    server = make_server(backend, JWT_PRIVATE_KEY=pem.replace("\n", "\\n"))
    account = signup(Api(server.url))
    public = serialization.load_pem_private_key(pem.encode(), password=None).public_key()
    assert jwt.decode(account.access, public, algorithms=["RS256"], audience="actorbase")


def test_a_key_file_an_older_version_left_is_kept(make_server, backend):
    """Upgrading keeps the DATA_DIR key: tokens signed before stay valid."""
    pem = _generate_pem()
    server = make_server(backend, start=False)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    (server.data_dir / "jwt_private_key.pem").write_text(pem + "\n")
    server.start()
    account = signup(Api(server.url))
    public = serialization.load_pem_private_key(pem.encode(), password=None).public_key()
    assert jwt.decode(account.access, public, algorithms=["RS256"], audience="actorbase")
    assert (LOCAL_FILES_WARNING in server.log()) == (backend == "postgres")
