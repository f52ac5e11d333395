"""The backup archive's format, shared by `actorbase backup` and `actorbase restore`.

A gzipped tar whose first member is ``manifest.json``; then the database
(``database/actorbase.db``), the secrets kept in DATA_DIR (``secrets/<name>``) and
the local storage files (``storage/<path under the storage root>``). Every member is
a regular file listed in the manifest with its size and SHA-256, so a restore checks
each one as it streams past, in one pass.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, BinaryIO

FORMAT = 1
"""Bumped when a restore of this version could not read a newer archive."""

MANIFEST = "manifest.json"
DATABASE = "database/actorbase.db"
SECRETS = "secrets/"
STORAGE = "storage/"

SECRET_FILES = ("admin_token", "jwt_private_key.pem", "storage_url_key")
"""DATA_DIR files holding secrets: the generated admin token, and the signing and
URL keys an older version kept there before they moved into ab_secrets (which the
database copy carries)."""

MAX_MANIFEST_BYTES = 64 << 20
MAX_SECRET_BYTES = 64 << 10
MAX_MEMBER_BYTES = 1 << 40
"""Bounds a restore holds a manifest and its members to before writing anything."""

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")
_CHUNK = 1 << 20


class ArchiveError(Exception):
    """The archive is not one `actorbase backup` wrote, or was damaged; one line."""


def check_name(name: str) -> str:
    """A member name a restore may write: the database, a secret of one segment, or a
    storage file of plain segments (no absolute path, `..`, backslash or control
    character can reach outside the target). Raises ArchiveError."""
    if name == DATABASE:
        return name
    segments = name.split("/")
    plain = all(_SEGMENT.fullmatch(s) for s in segments[1:])
    if name.startswith(SECRETS) and len(segments) == 2 and plain:
        return name
    if name.startswith(STORAGE) and 2 <= len(segments) <= 16 and plain:
        return name
    raise ArchiveError(f"unsafe or unknown member name {name!r}")


def sha256_of(handle: BinaryIO) -> tuple[int, str]:
    """(size, SHA-256 hex) of what `handle` reads to its end."""
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def entry(name: str, path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        size, digest = sha256_of(handle)
    return {"name": name, "size": size, "sha256": digest}


def check_manifest(manifest: Any, known_schema: int) -> dict[str, dict[str, Any]]:
    """The manifest's files by name, after checking its shape, format and schema
    version (a newer actorbase's database would be misread). Raises ArchiveError."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"not an actorbase backup of format {FORMAT}")
    if manifest.get("database") != "sqlite":
        raise ArchiveError("the archive holds no SQLite database")
    schema = manifest.get("schemaVersion")
    if not isinstance(schema, int) or schema > known_schema:
        raise ArchiveError(
            f"the backup's database is at migration {schema}; this version knows up to "
            f"{known_schema}"
        )
    files = manifest.get("files")
    if not isinstance(files, list):
        raise ArchiveError("the manifest lists no files")
    by_name: dict[str, dict[str, Any]] = {}
    for item in files:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("size"), int)
            and isinstance(item.get("sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", item["sha256"])
        ):
            raise ArchiveError(f"a manifest entry is malformed: {str(item)[:80]}")
        name = check_name(item["name"])
        bound = MAX_SECRET_BYTES if name.startswith(SECRETS) else MAX_MEMBER_BYTES
        if not 0 <= item["size"] <= bound:
            raise ArchiveError(f"{name} is {item['size']} bytes, beyond {bound}")
        if name in by_name:
            raise ArchiveError(f"{name} is listed twice")
        by_name[name] = item
    if DATABASE not in by_name:
        raise ArchiveError(f"the manifest lists no {DATABASE}")
    return by_name
