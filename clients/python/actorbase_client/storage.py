"""Files: upload (streamed, with progress), signed URLs, listing, removal."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .http import BodyProducer, Http

CHUNK = 64 * 1024

Progress = Callable[[int, int], object]
"""`on_progress(sent, total)`: bytes of the request body written so far, of all."""


class Storage:
    def __init__(self, http: Http) -> None:
        self._http = http

    async def upload(
        self,
        path: str,
        data: bytes | str | os.PathLike[str],
        *,
        content_type: str | None = None,
        on_progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Upload bytes (or a local file, read in chunks as it is sent) to `path`
        → {path, url, size, contentType}. `on_progress` hears each chunk written."""
        if isinstance(data, bytes):
            size, opener = len(data), None
        else:
            file = Path(data)
            size, opener = (await asyncio.to_thread(file.stat)).st_size, file
        ctype = content_type or mimetypes.guess_type(path)[0] or "application/octet-stream"
        boundary = "actorbase-" + uuid.uuid4().hex
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n{path}\r\n'
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="file"; filename="{_filename(path)}"\r\nContent-Type: {ctype}\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        total = len(head) + size + len(tail)

        def producer() -> BodyProducer:
            async def produce(write: Callable[[bytes], Awaitable[None]]) -> None:
                sent = 0

                async def put(chunk: bytes) -> None:
                    nonlocal sent
                    await write(chunk)
                    sent += len(chunk)
                    if on_progress is not None:
                        on_progress(sent, total)

                await put(head)
                if opener is None:
                    assert isinstance(data, bytes)
                    for i in range(0, size, CHUNK):
                        await put(data[i : i + CHUNK])
                else:
                    with opener.open("rb") as f:  # read in a thread, a chunk at a time
                        while chunk := await asyncio.to_thread(f.read, CHUNK):
                            await put(chunk)
                await put(tail)

            return produce

        response = await self._http.request(
            "POST",
            "/api/storage/upload",
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(total),
            },
            body_producer=producer,
        )
        return dict(response.body)

    async def signed_url(self, path: str, expires_in: int | None = None) -> dict[str, Any]:
        """→ {url, expiresAt}: a URL anyone may GET until it expires."""
        response = await self._http.request(
            "GET", f"/api/storage/{quote(path)}", params={"expiresIn": expires_in}
        )
        return dict(response.body)

    async def list(
        self, prefix: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """→ {files: [{path, size, contentType, updatedAt}], hasMore, cursor?}."""
        params = {"prefix": prefix, "limit": limit, "cursor": cursor}
        response = await self._http.request("GET", "/api/storage", params=params)
        return dict(response.body)

    async def remove(self, path: str) -> None:
        await self._http.request("DELETE", f"/api/storage/{quote(path)}")


def _filename(path: str) -> str:
    return path.rsplit("/", 1)[-1].replace('"', "_").replace("\r", "_").replace("\n", "_")
