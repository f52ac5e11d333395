"""`actorbase backup FILE`: a consistent copy of a running SQLite deployment.

Order matters. One read transaction on the live database pins a snapshot; SQLite's
online backup API copies that snapshot a few pages at a time (in WAL mode the server
keeps writing meanwhile, and the held snapshot keeps the copy from restarting), and
the same snapshot says which storage blobs exist. Only then are those blobs linked
(or copied) aside: blobs are immutable, so a link taken now is the blob the snapshot
names. One deleted in between (its file replaced or removed after the snapshot) loses
its metadata row in the copy, so no row ever lacks its file. The server's lock on the
database is never taken; nothing waits on this command.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import actorbase
from actorbase import archive
from config.settings import Settings

PAGES = 1024
"""Pages copied per step (4 MiB at SQLite's default page size)."""
PAUSE = 0.005
"""Seconds between steps, so a large copy leaves the disk to the server."""


_TX = "SELECT value FROM ab_counters WHERE name = 'tx'"


class BackupError(Exception):
    """The backup cannot be made; the message is one line for the operator."""


def backup(settings: Settings, file: str) -> int:
    """Write the archive to `file` (mode 0600: it holds the secrets); exit status."""
    try:
        manifest = _backup(settings, Path(file))
    except (BackupError, archive.ArchiveError) as exc:
        raise SystemExit(f"actorbase: {exc}") from None
    files = manifest["files"]
    print(
        f"actorbase: backed up tx {manifest['tx']} to {file}: {len(files)} members, "
        f"{sum(f['size'] for f in files)} bytes"
    )
    if manifest["storage"] != "local":
        print(f"actorbase: files on {manifest['storage']} are not in the archive (see README)")
    for path in manifest["droppedFiles"]:
        print(f"actorbase: {path} was deleted during the backup and is left out")
    return 0


def _backup(settings: Settings, target: Path) -> dict[str, Any]:
    if settings.is_postgres:
        raise BackupError(
            "actorbase backup copies SQLite; on PostgreSQL use pg_dump (README, section Backups)"
        )
    from store.sqlite import path_from_url

    if target.exists():
        raise BackupError(f"{target} exists; name a new file")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    database = path_from_url(settings.database_url)
    if not database.is_file():
        raise BackupError(f"no database at {database}")
    local = settings.storage_url.startswith("file://")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".actorbase-backup-") as tmp:
        stage = Path(tmp)
        copy = stage / archive.DATABASE
        copy.parent.mkdir()
        tx, schema, blobs = _snapshot(database, copy)
        dropped = []
        if local:
            root = Path(settings.storage_url.removeprefix("file://"))
            dropped = [p for p, key in blobs if not _stage_blob(root, key, stage)]
        _finish(copy, dropped)
        for name in archive.SECRET_FILES:
            source = settings.data_path / name
            if source.is_file():
                (stage / archive.SECRETS).mkdir(exist_ok=True)
                shutil.copyfile(source, stage / archive.SECRETS / name)
        names = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        manifest = {
            "format": archive.FORMAT,
            "actorbase": actorbase.__version__,
            "database": "sqlite",
            "schemaVersion": schema,
            "tx": tx,
            "createdAt": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "storage": "local" if local else settings.storage_url,
            "droppedFiles": dropped,
            "files": [archive.entry(name, stage / name) for name in names],
        }
        _write(target, stage, manifest)
    return manifest


def _snapshot(database: Path, copy: Path) -> tuple[int, int, list[tuple[str, str]]]:
    """Copy the database as of one snapshot into `copy`; return that snapshot's tx id,
    migration version and (path, blob key) of every file."""
    try:
        source = sqlite3.connect(database, isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {database}: {exc}") from None
    try:
        source.execute("BEGIN")
        try:
            tx = int(source.execute(_TX).fetchone()[0])
            schema = int(source.execute("SELECT max(version) FROM ab_migrations").fetchone()[0])
            blobs = source.execute("SELECT path, backend_key FROM ab_files").fetchall()
        except (sqlite3.Error, TypeError):
            raise BackupError(f"{database} is not a migrated actorbase database") from None
        target = sqlite3.connect(copy)
        try:
            source.backup(target, pages=PAGES, sleep=PAUSE)
        finally:
            target.close()
        source.execute("COMMIT")
    finally:
        source.close()
    return tx, schema, blobs


def _stage_blob(root: Path, key: str, stage: Path) -> bool:
    """Link (or, across filesystems, copy) the blob `key` into the stage; False if it
    is gone. The key comes from our own database, but is checked like an archive name."""
    name = archive.check_name(archive.STORAGE + "objects/" + key)
    source, staged = root / "objects" / key, stage / name
    staged.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, staged)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        try:
            shutil.copyfile(source, staged)
        except FileNotFoundError:
            return False
    return True


def _finish(copy: Path, dropped: list[str]) -> None:
    """Make the copy one self-contained file (no WAL) without the rows of `dropped`
    files, and check it."""
    with contextlib.closing(sqlite3.connect(copy, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.executemany("DELETE FROM ab_files WHERE path = ?", [(p,) for p in dropped])
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise BackupError(f"the copied database fails its check: {result}")


def _write(target: Path, stage: Path, manifest: dict[str, Any]) -> None:
    """The archive, manifest first, written aside and renamed into place: an
    interrupted backup leaves no partial file under the name."""
    partial = target.with_name(f".{target.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
                body = json.dumps(manifest, indent=1).encode()
                tar.addfile(_info(archive.MANIFEST, len(body)), io.BytesIO(body))
                for item in manifest["files"]:
                    with (stage / item["name"]).open("rb") as handle:
                        tar.addfile(_info(item["name"], item["size"]), handle)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    return info
