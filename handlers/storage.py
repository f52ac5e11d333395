"""/api/storage: streamed uploads, signed download URLs, listing and deletion.

Handlers parse and render; the rules live in `store.files` (paths, ownership,
metadata) and `store.storage` (limits, content checks, blob backends).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from typing import Any

import tornado.ioloop
import tornado.iostream
import tornado.web
import ujson

from actorbase.errors import (
    ApiError,
    Internal,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from handlers import bodylimit
from handlers.auth import iso
from handlers.base import ApiHandler
from handlers.multipart import Data, MultipartParser, Part, PartEnd, boundary_of
from handlers.openapi import BOOLEAN, INTEGER, STRING, array, obj, operation, param
from store import files
from store.principal import Principal
from store.storage.base import URL_MAX_SECONDS
from store.storage.upload import Upload, delete_blob

logger = logging.getLogger(__name__)

DEFAULT_EXPIRES = 3600
MIN_EXPIRES, MAX_EXPIRES = 60, URL_MAX_SECONDS
"""Signed URL lifetimes, seconds."""
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MULTIPART_OVERHEAD = 64 * 1024
"""Body bytes allowed beyond MAX_UPLOAD_BYTES for the form's framing and `path` field."""
MAX_FIELD_BYTES = 2048
DRAIN_SECONDS = 10
"""How long a refused upload's remaining body is read (and dropped) before we close."""


class _StorageHandler(ApiHandler):
    def base_url(self) -> str:
        """How the client reaches us: PUBLIC_URL, else the request's own scheme and host."""
        return self.ctx.settings.public_url or f"{self.request.protocol}://{self.request.host}"

    async def signed_url(self, meta: files.FileMeta, expires_in: int) -> tuple[str, int]:
        """A URL for `meta` valid `expires_in` seconds, and its expiry (Unix seconds)."""
        expires_at = int(time.time()) + expires_in
        blobs = self.ctx.blobs
        url = await blobs.call(
            blobs.url, meta.backend_key, meta.path, meta.content_type, expires_at, self.base_url()
        )
        return url, expires_at


@tornado.web.stream_request_body
class UploadHandler(_StorageHandler):
    """POST /api/storage/upload, multipart `file` and `path`, streamed to the backend.

    The body is never held whole: each chunk goes through the multipart parser into
    an `Upload` as it arrives. A size or type violation answers at once (413/415);
    a client that goes away mid-body leaves no file and no metadata behind.
    """

    rate_policy = "upload"
    openapi = {
        "post": operation(
            "Upload a file (multipart: file, path)",
            "storage",
            {
                201: obj(
                    ("path", "url", "size", "contentType"),
                    path=STRING,
                    url=STRING,
                    size=INTEGER,
                    contentType=STRING,
                )
            },
            body=obj(
                ("file", "path"),
                file={**STRING, "contentMediaType": "application/octet-stream"},
                path=STRING,
            ),
            body_type="multipart/form-data",
        )
    }
    _state = "starting"
    """starting → streaming → committing → done, or failed (nothing kept)."""
    _upload: Upload | None = None

    def _check_body_size(self) -> None:
        """Uploads are limited by MAX_UPLOAD_BYTES here and while streaming, not by
        the JSON body limit; refused framing is answered unread (handlers.bodylimit)."""
        problem = bodylimit.framing_error(self.request)
        if problem is not None:
            raise InvalidArgument(problem)
        limit = self.ctx.settings.max_upload_bytes + MULTIPART_OVERHEAD
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"File exceeds {self.ctx.settings.max_upload_bytes} bytes")
        # Tornado enforces this on the raw body too (chunked bodies included).
        self.request.connection.set_max_body_size(limit)  # type: ignore[union-attr]

    async def prepare(self) -> None:
        if self.request.method != "POST":
            # Read and drop the body, then Tornado's own 405 (→ NOT_FOUND) answers whole:
            # failing here, with the body unread, makes the close a reset that can beat
            # the response to the client.
            self._state = "ignored"
            with contextlib.suppress(ApiError):  # still counted and rate-limited
                await super().prepare()
            return
        try:
            await super().prepare()
            self._principal = self.require_auth()
            content_type = self.request.headers.get("Content-Type", "")
            self._parser = MultipartParser(boundary_of(content_type))
        except PayloadTooLarge:
            raise  # declared too large: answer and close without reading a byte of it
        except ApiError as exc:
            if bodylimit.framing_error(self.request) is not None:
                raise  # where the body ends is unknown: answer and close unread
            declared = self.request.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.ctx.settings.max_body_bytes:
                raise  # not worth reading for a refused request: answer and close
            await self._fail(exc)
            return
        self._field: str | None = None
        self._value = bytearray()
        self._path: str | None = None
        self._state = "streaming"

    async def data_received(self, chunk: bytes) -> None:
        if self._state != "streaming":
            return
        try:
            for event in self._parser.feed(chunk):
                await self._on_event(event)
        except Exception as exc:
            await self._fail(exc)

    async def _on_event(self, event: Part | Data | PartEnd) -> None:
        if isinstance(event, Part):
            self._field = event.name
            if event.name == "file":
                if self._upload is not None:
                    raise InvalidArgument("Only one file per upload")
                if self._path is not None:
                    await self._check_owner(self._path)  # 403 before the bytes, if we can
                settings = self.ctx.settings
                self._upload = Upload(
                    self.ctx.blobs,
                    event.content_type,
                    settings.max_upload_bytes,
                    settings.allowed_upload_types,
                )
            elif event.name != "path":
                raise InvalidArgument(f"Unexpected form field {event.name!r}")
        elif isinstance(event, Data):
            if self._field == "file":
                assert self._upload is not None
                await self._upload.feed(event.data)
            else:
                self._value += event.data
                if len(self._value) > MAX_FIELD_BYTES:
                    raise InvalidArgument(f"Form field {self._field} is too long")
        else:
            if self._field == "path":
                if self._path is not None:
                    raise InvalidArgument("Only one path per upload")
                try:
                    self._path = files.check_path(self._value.decode("utf-8"))
                except UnicodeDecodeError:
                    raise InvalidArgument("path must be UTF-8") from None
                self._value.clear()
            self._field = None

    async def _check_owner(self, path: str) -> None:
        meta = await self.ctx.reads.read(lambda txn: files.get(txn, path))
        if meta is not None and not files.can_access(self._principal, "write", meta):
            raise PermissionDenied(f"You do not have write access to {path}")

    async def post(self) -> None:
        if self._state == "failed":  # answered already; the rest of the body is now read
            self._finish_failed()
            return
        self._state = "committing"
        try:
            self._parser.close()
            if self._upload is None:
                raise InvalidArgument("The form needs a file field")
            if self._path is None:
                raise InvalidArgument("The form needs a path field")
            meta = await self._upload.commit(
                self.ctx.store, self.ctx.reads, self._principal, self._path
            )
        except BaseException:
            self._state = "failed"
            if self._upload is not None:
                await self._upload.abort()
            raise
        self._state = "done"
        url, _ = await self.signed_url(meta, DEFAULT_EXPIRES)
        self.send(
            {"path": meta.path, "url": url, "size": meta.size, "contentType": meta.content_type},
            status=201,
        )

    async def _fail(self, exc: Exception) -> None:
        """Discard the upload and send the error at once, mid-body, but finish the
        response only once the rest of the body has been read and dropped (at most
        the body limit, for at most DRAIN_SECONDS): closing with unread bytes would
        reset the connection and lose the answer on its way to the client."""
        self._state = "failed"
        if self._upload is not None:
            await self._upload.abort()
        if not isinstance(exc, ApiError):
            logger.error("upload failed", exc_info=exc)
            exc = Internal()
        body = ujson.dumps(exc.to_wire(), ensure_ascii=False, escape_forward_slashes=False)
        self.clear()
        self.set_status(exc.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Content-Length", str(len(body.encode())))
        self.write(body)
        self._drain = tornado.ioloop.IOLoop.current().call_later(DRAIN_SECONDS, self._finish_failed)
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            await self.flush()

    def _finish_failed(self) -> None:
        tornado.ioloop.IOLoop.current().remove_timeout(self._drain)
        if not self._finished:
            self.finish()

    def on_connection_close(self) -> None:
        """The client went away. While the body streams, discard what we have; once
        committing, the upload completes (the answer is simply not delivered). A body
        cut off never ends the request (Tornado waits for the rest forever), so it is
        no longer counted in flight here: else a stopping server would wait out
        SHUTDOWN_TIMEOUT for it."""
        if self._state == "streaming":
            self._state = "failed"
            if self._upload is not None:
                self._cleanup = asyncio.ensure_future(self._upload.abort())
            self.uncount()
        elif self._state == "failed":
            tornado.ioloop.IOLoop.current().remove_timeout(self._drain)
            self.uncount()
        super().on_connection_close()


class FileHandler(_StorageHandler):
    """GET /api/storage/{path} → a signed URL; DELETE → 204."""

    openapi = {
        "get": operation(
            "A signed, expiring download URL",
            "storage",
            {
                200: obj(
                    ("url", "expiresAt"), url=STRING, expiresAt={**STRING, "format": "date-time"}
                )
            },
            params=(
                param("path", STRING, "path"),
                param(
                    "expiresIn", {"type": "integer", "minimum": MIN_EXPIRES, "maximum": MAX_EXPIRES}
                ),
            ),
        ),
        "delete": operation(
            "Delete a file", "storage", {204: None}, params=(param("path", STRING, "path"),)
        ),
    }

    async def get(self, path: str) -> None:
        principal = self.require_auth()
        files.check_path(path)
        expires_in = self.int_argument("expiresIn", DEFAULT_EXPIRES, MIN_EXPIRES, MAX_EXPIRES)
        meta = await self._readable(principal, path)
        url, expires_at = await self.signed_url(meta, expires_in)
        self.send({"url": url, "expiresAt": iso(expires_at * 1000)})

    async def delete(self, path: str) -> None:
        principal = self.require_auth()
        files.check_path(path)
        store = self.ctx.store
        key = await self.ctx.reads.call(
            lambda: files.transaction(store, lambda txn: files.remove(txn, principal, path))
        )
        await delete_blob(self.ctx.blobs, key)
        self.no_content()

    async def _readable(self, principal: Principal, path: str) -> files.FileMeta:
        meta = await self.ctx.reads.read(lambda txn: files.get(txn, path))
        if meta is None or not files.can_access(principal, "read", meta):
            raise NotFound(f"File {path} not found")
        return meta


class ListHandler(_StorageHandler):
    """GET /api/storage?prefix=&limit=&cursor= → {files, hasMore, cursor?}."""

    openapi = {
        "get": operation(
            "List your files by path",
            "storage",
            {
                200: obj(
                    ("files", "hasMore"),
                    files=array(
                        obj(
                            ("path", "size", "contentType", "updatedAt"),
                            path=STRING,
                            size=INTEGER,
                            contentType=STRING,
                            updatedAt={**STRING, "format": "date-time"},
                        )
                    ),
                    hasMore=BOOLEAN,
                    cursor=STRING,
                )
            },
            params=(
                param("prefix", STRING),
                param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                param("cursor", STRING),
            ),
        )
    }

    async def get(self) -> None:
        principal = self.require_auth()
        prefix = self.get_query_argument("prefix", "")
        if len(prefix.encode("utf-8", "surrogatepass")) > files.MAX_PATH_BYTES:
            raise InvalidArgument(f"prefix must be at most {files.MAX_PATH_BYTES} bytes")
        limit = self.int_argument("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        cursor = self.get_query_argument("cursor", None)
        after = _decode_cursor(cursor) if cursor else None
        page = await self.ctx.reads.read(
            lambda txn: files.list_page(txn, principal, prefix, limit + 1, after)
        )
        body: dict[str, Any] = {
            "files": [
                {
                    "path": f.path,
                    "size": f.size,
                    "contentType": f.content_type,
                    "updatedAt": iso(f.updated_at),
                }
                for f in page[:limit]
            ],
            "hasMore": len(page) > limit,
        }
        if len(page) > limit:
            body["cursor"] = _encode_cursor(page[limit - 1].path)
        self.send(body)


def _encode_cursor(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidArgument("cursor is not one this API returned") from None
