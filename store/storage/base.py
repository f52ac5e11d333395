"""The interface both file storage backends share: immutable blobs under opaque keys.

A blob is written once through a `BlobWriter`, becomes visible under its key only on
`commit`, and is never modified; replacing a file writes a new blob (see
`store.files`). Every method here blocks (disk or network): callers run them through
`Blobs.call`, the backend's own small thread pool, never on the IOLoop.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import re
import uuid
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote

T = TypeVar("T")

URL_MAX_SECONDS = 7 * 86_400
"""The longest a signed URL may live (S3's presigned URLs cannot outlive 7 days)."""

THREADS = 4
"""Storage I/O threads per process: enough to overlap a few uploads' writes."""

INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"}
)
"""Types a browser may display in place; anything else is served as an attachment."""


def new_key() -> str:
    """A fresh, unguessable blob key, sharded into 256 directories/prefixes."""
    hex_ = uuid.uuid4().hex
    return f"{hex_[:2]}/{hex_}"


def disposition(path: str, content_type: str) -> str:
    """A Content-Disposition (RFC 6266) naming the file by its last path segment:
    an ASCII fallback plus the exact UTF-8 name, nothing a header can be split by."""
    name = path.rsplit("/", 1)[-1]
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    kind = "inline" if content_type in INLINE_TYPES else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class BlobWriter(abc.ABC):
    """One blob being written. Nothing is visible under `key` until `commit`
    returns; `abort` leaves nothing behind and may be called at any point, twice,
    or after a failed call. Calls on one writer are made one at a time."""

    key: str

    @abc.abstractmethod
    def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def abort(self) -> None: ...


class Blobs(abc.ABC):
    """A storage backend and its thread pool."""

    label: str
    """"local" or "s3"."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="storage")

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking storage work on this backend's pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @abc.abstractmethod
    def writer(self, content_type: str) -> BlobWriter:
        """A writer for a new blob under a fresh key (see `new_key`)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove a blob; a missing one is not an error."""

    @abc.abstractmethod
    def scan(self, after: str | None, limit: int) -> tuple[list[tuple[str, float]], str | None]:
        """Up to `limit` stored blobs after key `after` (None: from the first), in key
        order, each with when it was written (Unix seconds), and where the next page
        starts (None: the listing is done). Only keys `new_key` could have made are
        listed: anything else in the bucket or directory is not ours to judge."""

    @abc.abstractmethod
    def url(self, key: str, path: str, content_type: str, expires_at: int, base_url: str) -> str:
        """A URL anyone holding it may GET the blob from until `expires_at` (Unix
        seconds), served as `content_type` with `disposition(path, …)`. `base_url` is
        where this server is reached, for backends that serve blobs themselves."""

    def close(self) -> None:
        """Wait for storage work in flight, then release the pool."""
        self._pool.shutdown(wait=True)
