"""File metadata in SQL: who owns which path, its size, type, checksum and blob.

Listing and permission checks read this table only, never the bucket or the disk.
A path's row points at one immutable blob (`backend_key`); replacing a file swaps
the pointer in one transaction, so readers see the old file or the new one, never a
mix. Functions taking a `Txn` block and run on a pool thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from actorbase.errors import InvalidArgument, NotFound, PermissionDenied
from store import permissions
from store.base import Store, Txn
from store.principal import Principal
from store.query.ast import TRUE, Cmp

T = TypeVar("T")

MAX_PATH_BYTES = 512
RESERVED_PATHS = frozenset({"upload"})
"""`POST /api/storage/upload` is the upload endpoint, so no file may be called that."""

_COLUMNS = "path, user_id, size, content_type, checksum, backend_key, updated_at"


@dataclasses.dataclass(frozen=True, slots=True)
class FileMeta:
    path: str
    user_id: str | None
    """The owner; None for files the admin uploaded (only the admin sees those)."""
    size: int
    content_type: str
    checksum: str
    """SHA-256 of the content, hex."""
    backend_key: str
    updated_at: int
    """ms since epoch."""


def _meta(record: Any) -> FileMeta:
    return FileMeta(
        record[0],
        record[1],
        int(record[2]),
        record[3],
        record[4],
        record[5],
        int(record[6]),
    )


def check_path(path: str) -> str:
    """A storage path is relative, `/`-separated, without `.`/`..` or empty segments,
    control characters or backslashes, 1 to 512 bytes of UTF-8. Raises 400."""
    if not path:
        raise InvalidArgument("path is required")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidArgument(f"path must be at most {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        raise InvalidArgument("path must not start with /")
    if "\\" in path:
        raise InvalidArgument("path must not contain a backslash")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in path):
        raise InvalidArgument("path must not contain control characters")
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        raise InvalidArgument("path must not contain empty, . or .. segments")
    if path in RESERVED_PATHS:
        raise InvalidArgument(f"path {path!r} is reserved")
    return path


# -- who may do what: the one place storage access is decided --------------------------


def can_access(principal: Principal, action: str, meta: FileMeta) -> bool:
    """Whether `principal` may `read`, `write` (replace) or `delete` the file `meta`,
    by the app's `$storage` rules (default: owner-only; the admin token may do all)."""
    view = permissions.file_view(meta.path, meta.user_id, meta.content_type, meta.size)
    return permissions.can_file(principal, action, view)


def _read_sql(principal: Principal, params: list[Any]) -> str | None:
    """The SQL condition for the read rule when it is the owner-only one (or none),
    else None: listing then filters rows in Python with the same rule."""
    rule = permissions.file_rule(principal, "read")
    if rule == TRUE:
        return "TRUE"
    if rule == Cmp(("userId",), "eq", principal.user_id):
        params.append(principal.user_id)
        return "user_id = ?"
    return None


# -- reads ---------------------------------------------------------------------------


def get(txn: Txn, path: str) -> FileMeta | None:
    record = txn.execute(f"SELECT {_COLUMNS} FROM ab_files WHERE path = ?", (path,)).fetchone()
    return None if record is None else _meta(record)


def list_page(
    txn: Txn, principal: Principal, prefix: str, limit: int, after: str | None
) -> list[FileMeta]:
    """Up to `limit` files the caller may see whose path starts with `prefix`, in
    code-point order of path, starting after the path `after`."""
    params: list[Any] = []
    readable = _read_sql(principal, params)
    if readable is None:
        return _list_filtered(txn, principal, prefix, limit, after)
    conditions = [readable]
    if prefix:
        conditions.append("substr(path, 1, ?) = ?")
        params.extend([len(prefix), prefix])
    path = txn.dialect.text("path")
    if after is not None:
        conditions.append(f"{path} > ?")
        params.append(after)
    params.append(limit)
    where = " AND ".join(conditions)
    sql = f"SELECT {_COLUMNS} FROM ab_files WHERE {where} ORDER BY {path} LIMIT ?"
    return [_meta(r) for r in txn.execute(sql, params).fetchall()]


def _list_filtered(
    txn: Txn, principal: Principal, prefix: str, limit: int, after: str | None
) -> list[FileMeta]:
    """`list_page` for rules SQL does not express: pages of the prefix, kept if the
    read rule matches, until `limit` are found or the prefix is exhausted."""
    found: list[FileMeta] = []
    admin_view = dataclasses.replace(principal, is_admin=True)
    while len(found) < limit:
        batch = list_page(txn, admin_view, prefix, max(limit, 200), after)
        found += [m for m in batch if can_access(principal, "read", m)]
        if len(batch) < max(limit, 200):
            break
        after = batch[-1].path
    return found[:limit]


def totals(txn: Txn) -> tuple[int, int]:
    """(file count, total bytes) over every stored file, for /api/admin/stats."""
    count, size = txn.execute("SELECT count(*), coalesce(sum(size), 0) FROM ab_files").fetchone()
    return int(count), int(size)


# -- writes (one transaction each, through `transaction`) ------------------------------


def transaction(store: Store, fn: Callable[[Txn], T]) -> T:
    """Run `fn` in one read-write transaction on the calling (pool) thread."""
    with store.transaction() as txn:
        return fn(txn)


def save(txn: Txn, principal: Principal, meta: FileMeta) -> str | None:
    """Point `meta.path` at a new blob; returns the blob it replaced, if any.

    A path another user owns is 403 (the admin may replace any file, and the file
    keeps its owner). Two uploads racing for a new path are settled by the primary
    key; one racing a replacement waits on the row lock the UPDATE takes.
    """
    if not can_access(principal, "write", meta):
        raise PermissionDenied(f"You do not have write access to {meta.path}")
    inserted = txn.execute(
        f"INSERT INTO ab_files ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (path) DO NOTHING",
        dataclasses.astuple(meta),
    )
    if inserted.rowcount == 1:
        return None
    # Lock the row before reading its owner, so the check holds until COMMIT.
    txn.execute("UPDATE ab_files SET path = path WHERE path = ?", (meta.path,))
    current = get(txn, meta.path)
    if current is None:  # deleted between the two statements: the path is free again
        return save(txn, principal, meta)
    kept = dataclasses.replace(meta, user_id=current.user_id)
    if not (can_access(principal, "write", current) and can_access(principal, "write", kept)):
        raise PermissionDenied(f"You do not have write access to {meta.path}")
    txn.execute(
        "UPDATE ab_files SET size = ?, content_type = ?, checksum = ?, backend_key = ?, "
        "updated_at = ? WHERE path = ?",
        (meta.size, meta.content_type, meta.checksum, meta.backend_key, meta.updated_at, meta.path),
    )
    return current.backend_key


def remove(txn: Txn, principal: Principal, path: str) -> str:
    """Delete the row for `path`; returns its blob key. Missing or not the caller's: 404."""
    txn.execute("UPDATE ab_files SET path = path WHERE path = ?", (path,))
    current = get(txn, path)
    if current is None or not can_access(principal, "read", current):
        raise NotFound(f"File {path} not found")
    if not can_access(principal, "delete", current):
        raise PermissionDenied(f"You do not have delete access to {path}")
    txn.execute("DELETE FROM ab_files WHERE path = ?", (path,))
    return current.backend_key
