"""GET/HEAD /api/files/{path}?k=&e=&v=&s=: the signed, expiring URLs of local storage.

The URL is the credential (no bearer token): its HMAC, with URL key `v`, covers path,
blob key and expiry, so a tampered or expired URL is 403 PERMISSION_DENIED, and a URL for a file
since deleted or replaced is 404. Bytes are served with the stored Content-Type,
``X-Content-Type-Options: nosniff`` and a safe Content-Disposition, read from disk
on the storage pool in CHUNK_BYTES pieces with backpressure, with single-range
``Range`` support (206, or 416 when unsatisfiable).
"""

from __future__ import annotations

import re
import time

import ujson

from actorbase.errors import NotFound, RangeNotSatisfiable
from handlers.base import ApiHandler
from handlers.openapi import PUBLIC, STRING, operation, param
from store import files
from store.principal import Principal
from store.storage.base import disposition
from store.storage.local import LocalBlobs
from store.storage.sniff import TEXT_TYPES

CHUNK_BYTES = 256 * 1024

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range [start, end) a ``Range`` header asks for, or None to send
    the whole file (no header, several ranges or a malformed one, which RFC 9110
    lets a server ignore). Raises 416 for a range that lies outside the file."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        if int(last) == 0:
            raise RangeNotSatisfiable()
        return max(0, size - int(last)), size
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid, so ignored
    if start >= size:
        raise RangeNotSatisfiable()
    return start, size if last == "" else min(size, int(last) + 1)


class SignedFileHandler(ApiHandler):
    openapi = {
        method: operation(
            "A stored file's bytes, by signed URL (no bearer token)",
            "storage",
            {200: STRING, 206: STRING},
            auth=PUBLIC,
            params=(
                param("path", STRING, "path"),
                param("k", STRING, description="blob key"),
                param("e", STRING, description="expiry, Unix seconds"),
                param("v", STRING, description="URL key version (absent: 0)"),
                param("s", STRING, description="signature"),
            ),
            content_type="*/*",
        )
        for method in ("get", "head")
    }

    async def authenticate(self) -> Principal | None:
        """The signature authorizes; an Authorization header is not looked at."""
        return None

    async def get(self, path: str) -> None:
        await self._serve(path, body=True)

    async def head(self, path: str) -> None:
        await self._serve(path, body=False)

    async def _serve(self, path: str, body: bool) -> None:
        blobs = self.ctx.blobs
        if not isinstance(blobs, LocalBlobs):
            raise NotFound("File not found")
        key = self.get_query_argument("k", "")
        expires = self.get_query_argument("e", "")
        await blobs.verify(
            path, key, expires, self.get_query_argument("v", ""), self.get_query_argument("s", "")
        )
        meta = await self.ctx.reads.read(lambda txn: files.get(txn, path))
        if meta is None or meta.backend_key != key:
            raise NotFound("File not found")
        try:
            span = parse_range(self.request.headers.get("Range"), meta.size)
        except RangeNotSatisfiable as exc:
            self._refuse_range(exc, meta.size)
            return
        try:
            handle = await blobs.call(blobs.open, key)
        except FileNotFoundError:
            raise NotFound("File not found") from None
        try:
            start, end = span or (0, meta.size)
            self._headers_for(meta, int(expires))
            if span is not None:
                self.set_status(206)
                self.set_header("Content-Range", f"bytes {start}-{end - 1}/{meta.size}")
            self.set_header("Content-Length", str(end - start))
            if body and end > start:
                await blobs.call(handle.seek, start)
                remaining = end - start
                while remaining > 0:
                    chunk = await blobs.call(handle.read, min(CHUNK_BYTES, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    self.write(chunk)
                    await self.flush()  # wait for the socket: one chunk in memory at a time
            self.finish()
        finally:
            await blobs.call(handle.close)

    def _headers_for(self, meta: files.FileMeta, expires: int) -> None:
        content_type = meta.content_type
        if content_type in TEXT_TYPES:
            content_type += "; charset=utf-8"  # uploads of text types are verified UTF-8
        self.set_header("Content-Type", content_type)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Disposition", disposition(meta.path, meta.content_type))
        if meta.content_type != "application/pdf":  # browsers' PDF viewers need scripts
            self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("ETag", f'"{meta.checksum}"')
        # The URL names one immutable blob, so it may be cached until it expires.
        self.set_header("Cache-Control", f"private, max-age={max(0, expires - int(time.time()))}")

    def _refuse_range(self, exc: RangeNotSatisfiable, size: int) -> None:
        """416 needs Content-Range, which `send_error` would clear."""
        self.set_status(exc.status)
        self.set_header("Content-Range", f"bytes */{size}")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(ujson.dumps(exc.to_wire()))
