"""`actorbase backup` and `actorbase restore` as an operator runs them: the real
commands as subprocesses against a real server on SQLite, taken under write load and
restored into an empty directory; and the archives and targets a restore refuses."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.handlers.accounts import signup
from tests.serverproc import Api, ServerProcess

BOUND = 120
"""Seconds a command may take before the test fails (a timeout, not a measure)."""


def sqlite_server(data_dir: Path) -> ServerProcess:
    """A server whose admin token is generated into DATA_DIR, as a deployment's is."""
    return ServerProcess(data_dir, f"sqlite:///{data_dir / 'actorbase.db'}", ADMIN_TOKEN="")


def actorbase(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`actorbase <args>` with `server`'s settings (its DATA_DIR and DATABASE_URL)."""
    return subprocess.run(
        [sys.executable, "-m", "actorbase", *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=BOUND,
    )


def upload(api: Api, path: str, content: bytes) -> requests.Response:
    return api.post(
        "/api/storage/upload", files={"file": ("f", content, "text/plain")}, data={"path": path}
    )


def served(api: Api, path: str) -> bytes:
    response = api.get("/api/storage/" + path)
    assert response.status_code == 200, response.text
    got = requests.get(response.json()["url"], timeout=30)
    assert got.status_code == 200, (path, got.status_code)
    return got.content


class Writer(threading.Thread):
    """Creates rows (and every tenth time a file) as fast as the server acknowledges
    them, recording what was acknowledged, in order."""

    def __init__(self, api: Api) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.rows: list[str] = []
        self.files: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            response = self.api.post("/api/data/notes", json={"n": n})
            if response.status_code != 201:
                self.errors.append(response.text)
                return
            with self.lock:
                self.rows.append(response.json()["data"]["id"])
            if n % 10 == 0:
                path, content = f"load/{n}.txt", f"file {n}".encode()
                if upload(self.api, path, content).status_code != 201:
                    self.errors.append(f"upload {path}")
                    return
                with self.lock:
                    self.files[path] = content

    def acknowledged(self) -> tuple[list[str], dict[str, bytes]]:
        with self.lock:
            return list(self.rows), dict(self.files)

    def wait_for(self, rows: int) -> None:
        for _ in range(BOUND * 20):
            assert not self.errors, self.errors
            with self.lock:
                if len(self.rows) >= rows:
                    return
            self.stopping.wait(0.05)
        raise AssertionError(f"fewer than {rows} writes acknowledged")


def under_load(api: Api, files: int) -> tuple[dict[str, bytes], dict[str, str], Writer]:
    """`files` uploads first (their contents and signed URLs by path), then a Writer
    running, 50 of its writes already acknowledged: the state a backup is taken in."""
    before = {f"early/{i}.txt": f"early {i}".encode() for i in range(files)}
    urls = {}
    for path, content in before.items():
        response = upload(api, path, content)
        assert response.status_code == 201, response.text
        urls[path] = response.json()["url"]
    writer = Writer(api)
    writer.start()
    writer.wait_for(50)
    return before, urls, writer


def test_a_backup_under_write_load_restores_every_acknowledged_write(tmp_path):
    live = sqlite_server(tmp_path / "live").start()
    archive = tmp_path / "backup.tar.gz"
    try:
        admin_token = (live.data_dir / "admin_token").read_text().strip()
        user = signup(Api(live.url))
        before, urls, writer = under_load(user.api, files=5)
        rows_before, files_before = writer.acknowledged()
        result = actorbase(live, "backup", str(archive))
        assert result.returncode == 0, result.stderr
        writer.wait_for(len(rows_before) + 50)  # the load went on meanwhile
        writer.stopping.set()
        writer.join(BOUND)
        assert not writer.errors, writer.errors
    finally:
        live.stop()
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    restored = sqlite_server(tmp_path / "restored")
    result = actorbase(restored, "restore", str(archive))
    assert result.returncode == 0, result.stderr
    token_file = restored.data_dir / "admin_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() == admin_token
    restored.start()
    try:
        admin = Api(restored.url, admin_token)
        assert admin.get("/api/admin/stats").status_code == 200
        ids = {row["id"] for row in admin.post("/api/query", json={"notes": {}}).json()["notes"]}
        assert set(rows_before) <= ids
        # The old access token is still good, and so is the old refresh token.
        restored_user = Api(restored.url, user.access)
        mine = restored_user.post("/api/query", json={"notes": {}})
        assert mine.status_code == 200 and set(rows_before) <= {
            r["id"] for r in mine.json()["notes"]
        }
        refreshed = Api(restored.url).post("/api/auth/refresh", json={"refreshToken": user.refresh})
        assert refreshed.status_code == 200, refreshed.text
        for path, content in {**before, **files_before}.items():
            assert served(restored_user, path) == content
        # URLs signed before the backup are still good: the URL key came along.
        for path, url in urls.items():
            moved = urlunsplit(urlsplit(url)._replace(netloc=urlsplit(restored.url).netloc))
            assert requests.get(moved, timeout=30).content == before[path]
        # No file the restored database lists lacks its bytes.
        listing = restored_user.get("/api/storage", params={"prefix": "load/", "limit": 1000})
        listed = [f["path"] for f in listing.json()["files"]]
        assert set(files_before) <= set(listed)
        for path in listed:
            assert served(restored_user, path) == f"file {path[5:-4]}".encode()
    finally:
        restored.stop()


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory) -> Path:
    """A backup of a small deployment with one stored file, taken with no server."""
    root = tmp_path_factory.mktemp("good")
    server = sqlite_server(root / "data").start()
    try:
        user = signup(Api(server.url))
        assert upload(user.api, "a/b.txt", b"hello").status_code == 201
    finally:
        server.stop()
    archive = root / "backup.tar.gz"
    result = actorbase(server, "backup", str(archive))
    assert result.returncode == 0, result.stderr
    return archive


def members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive, "r:gz") as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def rewrite(path: Path, items: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in items:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("actorbase: ")
    return lines[0]


def test_the_archive_lists_every_member_with_its_size_and_hash(good_archive):
    items = members(good_archive)
    assert items[0][0].name == "manifest.json"
    manifest = json.loads(items[0][1])
    assert manifest["format"] == 1 and manifest["database"] == "sqlite"
    assert manifest["schemaVersion"] >= 6
    listed = {f["name"]: f for f in manifest["files"]}
    assert {"database/actorbase.db", "secrets/admin_token"} <= set(listed)
    assert any(name.startswith("storage/objects/") for name in listed)
    assert len(items) == len(listed) + 1
    for info, data in items[1:]:
        assert listed[info.name]["size"] == len(data) == info.size
        assert listed[info.name]["sha256"] == hashlib.sha256(data).hexdigest()


def test_restore_refuses_a_directory_that_is_not_empty(tmp_path, good_archive):
    target = sqlite_server(tmp_path / "data")
    target.data_dir.mkdir()
    (target.data_dir / "notes.txt").write_text("mine")
    line = one_line_refusal(actorbase(target, "restore", str(good_archive)))
    assert "is not empty" in line
    assert sorted(p.name for p in target.data_dir.iterdir()) == ["notes.txt"]


def test_restore_refuses_a_stale_wal_beside_a_database_kept_elsewhere(tmp_path, good_archive):
    elsewhere = tmp_path / "db"
    elsewhere.mkdir()
    (elsewhere / "actorbase.db-wal").write_bytes(b"stale")
    target = ServerProcess(tmp_path / "data", f"sqlite:///{elsewhere / 'actorbase.db'}")
    line = one_line_refusal(actorbase(target, "restore", str(good_archive)))
    assert "actorbase.db-wal exists" in line
    assert not (elsewhere / "actorbase.db").exists()


def test_restore_refuses_while_a_server_holds_the_database(tmp_path, good_archive):
    server = sqlite_server(tmp_path / "data").start()
    try:
        line = one_line_refusal(actorbase(server, "restore", str(good_archive)))
        assert "another actorbase process is using" in line
    finally:
        server.stop()


def _refused(tmp_path: Path, archive: Path) -> str:
    target = sqlite_server(tmp_path / "data")
    line = one_line_refusal(actorbase(target, "restore", str(archive)))
    # Nothing restored is left behind, not even the lock file the restore held.
    left = (
        [p for p in target.data_dir.rglob("*") if p.is_file()] if target.data_dir.exists() else []
    )
    assert left == []
    return line


def test_restore_refuses_a_member_that_climbs_out(tmp_path, good_archive):
    items = members(good_archive)
    evil = tarfile.TarInfo("storage/../../../evil.txt")
    evil.size = 4
    line = _refused(tmp_path, rewrite(tmp_path / "evil.tar.gz", [*items, (evil, b"evil")]))
    assert "unsafe or unknown member name" in line
    assert not (tmp_path / "evil.txt").exists()


def test_restore_refuses_a_symlink(tmp_path, good_archive):
    items = members(good_archive)
    link = tarfile.TarInfo("storage/objects/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    line = _refused(tmp_path, rewrite(tmp_path / "link.tar.gz", [*items, (link, b"")]))
    assert "not a regular file" in line


def test_restore_refuses_a_member_whose_hash_differs(tmp_path, good_archive):
    items = members(good_archive)
    tampered = []
    for info, data in items:
        if info.name.startswith("storage/"):
            data = bytes([data[0] ^ 1]) + data[1:]
        tampered.append((info, data))
    line = _refused(tmp_path, rewrite(tmp_path / "bad.tar.gz", tampered))
    assert "does not match its SHA-256" in line


def test_restore_refuses_a_member_missing_from_the_archive(tmp_path, good_archive):
    items = [(i, d) for i, d in members(good_archive) if not i.name.startswith("secrets/")]
    line = _refused(tmp_path, rewrite(tmp_path / "short.tar.gz", items))
    assert "the archive lacks secrets/admin_token" in line


def test_restore_refuses_what_is_not_an_archive(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball at all")
    assert "cannot read" in _refused(tmp_path, junk)
    manifestless = rewrite(tmp_path / "bare.tar.gz", [(_info("database/actorbase.db", 1), b"x")])
    assert "does not start with manifest.json" in _refused(tmp_path, manifestless)


def test_restore_refuses_a_backup_from_a_newer_schema(tmp_path, good_archive):
    items = members(good_archive)
    manifest = json.loads(items[0][1])
    manifest["schemaVersion"] = 999
    body = json.dumps(manifest).encode()
    line = _refused(
        tmp_path,
        rewrite(tmp_path / "new.tar.gz", [(_info("manifest.json", len(body)), body), *items[1:]]),
    )
    assert "migration 999" in line


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def test_backup_refuses_to_overwrite_and_postgresql(tmp_path, good_archive):
    server = sqlite_server(tmp_path / "data")
    server.data_dir.mkdir()
    line = one_line_refusal(actorbase(server, "backup", str(good_archive)))
    assert "exists" in line
    line = one_line_refusal(actorbase(server, "backup", str(tmp_path / "new.tar.gz")))
    assert "no database at" in line
    assert not (tmp_path / "new.tar.gz").exists()
    server.env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    for command in ("backup", "restore"):
        line = one_line_refusal(actorbase(server, command, str(tmp_path / "x.tar.gz")))
        assert "README" in line and "pg_" in line
