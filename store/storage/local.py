"""Local-disk blobs under STORAGE_URL (``file://DATA_DIR/storage`` by default).

Layout: ``objects/ab/<key>`` holds committed blobs, ``tmp/`` uploads in progress.
A blob is written to ``tmp/`` and renamed into ``objects/`` only after fsync, so a
crash or an aborted upload never leaves a partial object. actorbase serves these
blobs itself at ``SIGNED_PREFIX`` with HMAC-signed, expiring URLs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import quote, urlencode

from actorbase.errors import PermissionDenied
from store.storage.base import Blobs, BlobWriter, new_key

if TYPE_CHECKING:
    from store.signing_keys import SigningKeys

SIGNED_PREFIX = "/api/files/"
"""Where signed local URLs are served (handlers.signed)."""

STALE_TMP_SECONDS = 86_400
"""Temp files older than this are from a crashed process and are swept at start
(younger ones may belong to another live process sharing the directory)."""


def sign(secret: bytes, path: str, key: str, expires_at: int) -> str:
    """HMAC-SHA256 over path, blob key and expiry. Covering the key means a URL dies
    with the blob: a replaced or re-created file needs a new URL."""
    message = f"{path}\n{key}\n{expires_at}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


_SHARD = re.compile(r"[0-9a-f]{2}")
_NAME = re.compile(r"[0-9a-f]{32}")
"""A key's directory and file name, as `new_key` makes them."""


class LocalWriter(BlobWriter):
    def __init__(self, root: Path, key: str) -> None:
        self.key = key
        self._final = root / "objects" / key
        self._tmp = root / "tmp" / f"{key.replace('/', '_')}.part"
        self._file: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        if self._file is None:
            # O_EXCL: a key is fresh, so an existing temp file would be a bug, not a retry.
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            self._file = os.fdopen(fd, "wb")
        self._file.write(data)

    def commit(self) -> None:
        if self._file is None:
            self.write(b"")
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._final.parent.mkdir(exist_ok=True)
        os.replace(self._tmp, self._final)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)


class LocalBlobs(Blobs):
    label = "local"

    def __init__(self, root: Path, keys: SigningKeys) -> None:
        super().__init__()
        self.root = root
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        # Kept in the database, so a URL one process signs, any serves.
        self._keys = keys
        self._sweep()

    def _sweep(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        for leftover in (self.root / "tmp").iterdir():
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    def writer(self, content_type: str) -> BlobWriter:
        return LocalWriter(self.root, new_key())

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def scan(self, after: str | None, limit: int) -> tuple[list[tuple[str, float]], str | None]:
        objects = self.root / "objects"
        found: list[tuple[str, float]] = []
        for shard in sorted(d for d in os.listdir(objects) if _SHARD.fullmatch(d)):
            if after is not None and shard < after[:2]:
                continue
            for name in sorted(n for n in os.listdir(objects / shard) if _NAME.fullmatch(n)):
                key = f"{shard}/{name}"
                if after is not None and key <= after:
                    continue
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    found.append((key, (objects / key).stat().st_mtime))
                    if len(found) == limit:
                        return found, key
        return found, None

    def open(self, key: str) -> BinaryIO:
        """The committed blob for reading; FileNotFoundError if it is gone."""
        return self._path(key).open("rb")

    def _path(self, key: str) -> Path:
        # Keys come from `new_key` via the database, or from a URL whose HMAC covers them.
        return self.root / "objects" / key

    # -- signed URLs -------------------------------------------------------------------

    def url(self, key: str, path: str, content_type: str, expires_at: int, base_url: str) -> str:
        signer = self._keys.url.newest
        signature = sign(signer.secret, path, key, expires_at)
        query = urlencode({"k": key, "e": expires_at, "v": signer.kid, "s": signature})
        return f"{base_url}{SIGNED_PREFIX}{quote(path, safe='/')}?{query}"

    async def verify(self, path: str, key: str, expires: str, version: str, signature: str) -> None:
        """Raise 403 unless the URL was signed by us with URL key `version` (0, the
        key from before rotation, when the URL names none) and has not expired."""
        signer = await self._keys.find(self._keys.url, version or "0")
        if (
            signer is None
            or not (expires.isascii() and expires.isdigit())
            or not hmac.compare_digest(
                sign(signer.secret, path, key, int(expires)).encode(), signature.encode()
            )
        ):
            raise PermissionDenied("Invalid signature")
        if int(expires) < time.time():
            raise PermissionDenied("URL has expired")
