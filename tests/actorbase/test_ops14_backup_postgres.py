"""README's PostgreSQL backup, done as written (issue 14, item 4): `pg_dump
--format=custom` while a server takes writes, the files copied after the dump (the
storage directory with `rsync -a --exclude=/tmp/`, or the bucket with `aws s3 sync`), `pg_restore
--no-owner` into an empty database; a server started on the copy finds every write
acknowledged before the dump, every file its metadata names, and honours the tokens
(and local signed URLs) issued before: the keys are in the dump. `actorbase backup`
itself refuses PostgreSQL (tests/actorbase/test_ops_backup.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.actorbase.test_ops_backup import BOUND, served, under_load
from tests.handlers.accounts import signup
from tests.s3server import CREDENTIALS, S3Server
from tests.serverproc import ADMIN_TOKEN, Api, PostgresDatabase, ServerProcess


def run(*command: str) -> subprocess.CompletedProcess[str]:
    # Fixed commands of the README, with test paths and URLs: nothing from a client.
    env = {**os.environ, **CREDENTIALS}
    return subprocess.run(command, capture_output=True, text=True, timeout=BOUND, env=env)


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


def _copy_files(storage: str, live: ServerProcess, restored: ServerProcess, moto) -> None:
    """README's copy of the files, taken after the dump."""
    if storage == "local":
        source, target = live.data_dir / "storage", restored.data_dir / "storage"
        # Uploads in progress write to tmp/ and move out of it: rsync would find them gone.
        copied = run("rsync", "-a", "--exclude=/tmp/", f"{source}/", f"{target}/")
    else:
        source, target = live.env["STORAGE_URL"], restored.env["STORAGE_URL"]
        copied = run("aws", "s3", "sync", source, target, "--endpoint-url", moto.endpoint)
    assert copied.returncode == 0, copied.stderr


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_pg_dump_under_write_load_restores_every_acknowledged_write(
    pg_base_url, tmp_path: Path, storage: str, request
):
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    for tool in ("pg_dump", "pg_restore", "rsync" if storage == "local" else "aws"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    moto = request.getfixturevalue("s3") if storage == "s3" else None
    live_env = moto.server_env(moto.bucket()) if moto else {}
    restored_env = moto.server_env(moto.bucket()) if moto else {}
    live_db, new_db = PostgresDatabase(pg_base_url), PostgresDatabase(pg_base_url)
    live = ServerProcess(tmp_path / "live", live_db.url, **live_env)
    restored = ServerProcess(tmp_path / "restored", new_db.url, **restored_env)
    dump = tmp_path / "actorbase.dump"
    try:
        live.start()
        user = signup(Api(live.url))
        before, urls, writer = under_load(user.api, files=3)
        rows_before, files_before = writer.acknowledged()
        dumped = run("pg_dump", "--format=custom", f"--file={dump}", live.database_url)
        assert dumped.returncode == 0, dumped.stderr
        # The files after the dump: the copy holds every file the dump's metadata names.
        restored.data_dir.mkdir(parents=True)
        _copy_files(storage, live, restored, moto)
        writer.wait_for(len(rows_before) + 20)  # the load went on meanwhile
        writer.stopping.set()
        writer.join(BOUND)
        assert not writer.errors, writer.errors
        live.stop()

        loaded = run("pg_restore", "--no-owner", f"--dbname={new_db.url}", str(dump))
        assert loaded.returncode == 0, loaded.stderr
        restored.start()
        admin = Api(restored.url, ADMIN_TOKEN)  # ADMIN_TOKEN is configuration, kept aside
        ids = {r["id"] for r in admin.post("/api/query", json={"notes": {}}).json()["notes"]}
        assert set(rows_before) <= ids
        # The signing key came with the dump: the old access and refresh tokens work.
        restored_user = Api(restored.url, user.access)
        assert restored_user.get("/api/auth/me").status_code == 200
        refreshed = Api(restored.url).post("/api/auth/refresh", json={"refreshToken": user.refresh})
        assert refreshed.status_code == 200, refreshed.text
        for path, content in {**before, **files_before}.items():
            assert served(restored_user, path) == content
        # So did the URL-signing key: local URLs signed before the dump are still good
        # (S3's are signed with the AWS credentials, for the old bucket).
        for path, url in urls.items() if storage == "local" else ():
            moved = urlunsplit(urlsplit(url)._replace(netloc=urlsplit(restored.url).netloc))
            assert requests.get(moved, timeout=30).content == before[path]
        # Every file the restored metadata names has its bytes.
        listing = restored_user.get("/api/storage", params={"prefix": "load/", "limit": 1000})
        for path in [f["path"] for f in listing.json()["files"]]:
            assert served(restored_user, path) == f"file {path[5:-4]}".encode()
    finally:
        for server in (live, restored):
            if server.proc is not None:
                server.stop()
        live_db.drop()
        new_db.drop()
