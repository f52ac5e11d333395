"""`actorbase restore FILE`: a backup archive back into an empty data directory.

Refused, with one line and nothing written, if a server holds the database or any
target (DATA_DIR, the database file, the local storage root) is not empty. The
archive is read in one pass: the manifest first (format, schema version, names,
sizes), then each member checked against it (a regular file, a listed name, the
listed size and SHA-256) as it is written. Everything restored is mode 0600. On any
failure what was written is removed again, leaving the targets as they were.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

from actorbase import archive
from actorbase.archive import ArchiveError
from config.settings import Settings
from store.base import StoreUnavailable


class RestoreError(Exception):
    """The targets cannot take this restore; one line for the operator."""


def restore(settings: Settings, file: str) -> int:
    if settings.is_postgres:
        raise SystemExit(
            "actorbase: actorbase restore restores SQLite; on PostgreSQL use pg_restore "
            "(README, section Backups)"
        )
    from store.sqlite import SQLiteStore, path_from_url

    targets = _Targets(settings, path_from_url(settings.database_url))
    lock = targets.database.with_name(targets.database.name + ".lock")
    lock_existed = lock.exists()
    # Claiming makes the database's directory: on a refusal it goes again, if empty.
    made = _missing(targets.database.parent) | _missing(targets.data_dir)
    store = SQLiteStore(settings.database_url)
    try:
        # Claimed first: a server starting meanwhile is refused, not half-restored under.
        store.claim()
        targets.check_empty(ignore=lock)
        manifest = targets.extract(Path(file))
    except (StoreUnavailable, RestoreError, ArchiveError) as exc:
        store.close()
        if not lock_existed:
            lock.unlink(missing_ok=True)
        for directory in sorted(made, key=lambda d: len(d.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: something else is in it
                directory.rmdir()
        raise SystemExit(f"actorbase: {exc}") from None
    store.close()
    print(
        f"actorbase: restored tx {manifest['tx']} of {manifest['createdAt']}, "
        f"{len(manifest['files'])} files"
    )
    return 0


def _missing(directory: Path) -> set[Path]:
    """`directory` and its ancestors that do not exist yet."""
    missing = set()
    while not directory.exists() and directory != directory.parent:
        missing.add(directory)
        directory = directory.parent
    return missing


class _Targets:
    """Where each member goes, and what was written, to undo."""

    def __init__(self, settings: Settings, database: Path) -> None:
        self.data_dir = settings.data_path
        self.database = database
        self.storage = (
            Path(settings.storage_url.removeprefix("file://"))
            if settings.storage_url.startswith("file://")
            else None
        )
        self._written: list[Path] = []
        self._made: list[Path] = []

    def check_empty(self, ignore: Path) -> None:
        # A stale WAL beside the restored file would be replayed into it.
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = self.database.with_name(self.database.name + suffix)
            if path.exists():
                raise RestoreError(f"{path} exists; restore needs an empty data directory")
        for directory in (self.data_dir, self.storage):
            if directory is None or not directory.exists():
                continue
            if not directory.is_dir():
                raise RestoreError(f"{directory} is not a directory")
            if any(p.resolve() != ignore.resolve() for p in directory.iterdir()):
                raise RestoreError(f"{directory} is not empty; restore needs an empty one")

    def path_of(self, name: str) -> Path:
        if name == archive.DATABASE:
            return self.database
        if name.startswith(archive.SECRETS):
            return self.data_dir / name.removeprefix(archive.SECRETS)
        if self.storage is None:
            raise RestoreError("the backup holds local files but STORAGE_URL is not file://")
        return self.storage / name.removeprefix(archive.STORAGE)

    def extract(self, file: Path) -> dict[str, Any]:
        try:
            return self._extract(file)
        except BaseException:
            self._undo()
            raise

    def _extract(self, file: Path) -> dict[str, Any]:
        from store.migrations import SQLITE

        with _open_tar(file) as tar:
            try:
                members = iter(tar)
                first = next(members, None)
                if first is None or first.name != archive.MANIFEST or not first.isreg():
                    raise ArchiveError(f"{file} does not start with {archive.MANIFEST}")
                if first.size > archive.MAX_MANIFEST_BYTES:
                    raise ArchiveError(f"{archive.MANIFEST} is too large")
                manifest = _json(tar.extractfile(first))
                expected = archive.check_manifest(manifest, max(v for v, _ in SQLITE))
                self._check_space(sum(item["size"] for item in expected.values()))
                for member in members:
                    self._member(tar, member, expected)
            except (OSError, EOFError, tarfile.TarError) as exc:
                raise ArchiveError(f"{file} is damaged: {exc}") from None
        if expected:
            missing = sorted(expected)
            raise ArchiveError(f"the archive lacks {missing[0]} and {len(missing) - 1} more")
        return manifest

    def _member(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, expected: dict[str, dict[str, Any]]
    ) -> None:
        name = archive.check_name(member.name)
        if not member.isreg():
            raise ArchiveError(f"{name} is not a regular file (links and devices are refused)")
        item = expected.pop(name, None)
        if item is None:
            raise ArchiveError(f"{name} is not in the manifest, or is there twice")
        if member.size != item["size"]:
            raise ArchiveError(f"{name} is {member.size} bytes; the manifest says {item['size']}")
        target = self.path_of(name)
        self._mkdirs(target.parent)
        source = tar.extractfile(member)
        assert source is not None  # a regular file
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._written.append(target)
        with os.fdopen(fd, "wb") as out:
            size, digest = archive.sha256_of(_Tee(source, out))
            out.flush()
            os.fsync(out.fileno())
        if (size, digest) != (item["size"], item["sha256"]):
            raise ArchiveError(f"{name} does not match its SHA-256 in the manifest")

    def _check_space(self, total: int) -> None:
        probe = next(p for p in (self.data_dir, *self.data_dir.parents) if p.exists())
        free = shutil.disk_usage(probe).free
        if total > free:
            raise RestoreError(f"the backup needs {total} bytes; {probe} has {free} free")

    def _mkdirs(self, directory: Path) -> None:
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            path.mkdir(mode=0o700)
            self._made.append(path)

    def _undo(self) -> None:
        for path in reversed(self._written):
            path.unlink(missing_ok=True)
        for path in reversed(self._made):
            if path.exists() and not any(path.iterdir()):
                path.rmdir()


def _open_tar(file: Path) -> tarfile.TarFile:
    """The archive, read as a stream: each member once, in order."""
    try:
        return tarfile.open(file, mode="r|gz")
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(f"cannot read {file}: {exc}") from None


class _Tee:
    """Reads from `source`, writing what it reads to `out`: hash and copy in one pass."""

    def __init__(self, source: Any, out: Any) -> None:
        self._source, self._out = source, out

    def read(self, n: int = -1) -> bytes:
        chunk = self._source.read(n)
        self._out.write(chunk)
        return chunk


def _json(handle: Any) -> Any:
    try:
        return json.loads(handle.read())
    except ValueError:
        raise ArchiveError(f"{archive.MANIFEST} is not JSON") from None
