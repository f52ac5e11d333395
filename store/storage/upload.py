"""One file upload from first byte to committed metadata, with nothing partial left.

The caller feeds the file's bytes as they arrive (on the IOLoop); size and type are
checked on every chunk, so a violation is raised as soon as it can be seen. Bytes
are handed to the backend's writer on its thread pool in FLUSH_BYTES batches, one
at a time in order, which also holds the socket back while storage catches up.
`commit` makes the blob visible and then points the path at it in one transaction;
`abort` (at any moment, any number of times) removes whatever was written.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from actorbase.errors import PayloadTooLarge
from store import files
from store.base import Store, now_ms
from store.principal import Principal
from store.readpool import ReadPool
from store.storage.base import Blobs, BlobWriter
from store.storage.sniff import Sniffer

logger = logging.getLogger(__name__)

FLUSH_BYTES = 1024 * 1024
"""Bytes gathered before one hop to the storage pool: few hops, little memory."""


class Upload:
    """One upload in progress. Driven from the IOLoop only."""

    def __init__(
        self, blobs: Blobs, declared_type: str | None, max_bytes: int, allowed: frozenset[str]
    ) -> None:
        self._blobs = blobs
        self._max_bytes = max_bytes
        self._sniffer = Sniffer(declared_type, allowed)  # 415 now if the declared type is wrong
        self._sha = hashlib.sha256()
        self._writer: BlobWriter | None = None
        self._batch: list[bytes] = []
        self._batched = 0
        self._lock = asyncio.Lock()
        """Serializes writer calls: a flush in flight finishes before an abort runs."""
        self._aborted = False
        self.size = 0

    async def feed(self, data: bytes) -> None:
        """Take the next bytes of the file; raises 413 or 415 as soon as it can tell."""
        self.size += len(data)
        if self.size > self._max_bytes:
            raise PayloadTooLarge(f"File exceeds {self._max_bytes} bytes")
        self._sniffer.feed(data)
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        data = b"".join(self._batch)
        self._batch.clear()
        self._batched = 0
        async with self._lock:
            if self._aborted:  # bytes already in flight when the client went away
                return
            if self._writer is None:
                # Known by now: a flush comes after FLUSH_BYTES or after `finish`.
                assert self._sniffer.content_type is not None
                self._writer = self._blobs.writer(self._sniffer.content_type)
            await self._blobs.call(self._write, self._writer, data)

    def _write(self, writer: BlobWriter, data: bytes) -> None:
        self._sha.update(data)
        writer.write(data)

    async def commit(
        self, store: Store, reads: ReadPool, principal: Principal, path: str
    ) -> files.FileMeta:
        """Finish the file and publish it at `path` (403 if another user owns it).

        On any failure the new blob is deleted; on success the blob it replaced is.
        """
        content_type = self._sniffer.finish()
        await self._flush()
        assert self._writer is not None
        writer = self._writer
        async with self._lock:
            try:
                await self._blobs.call(writer.commit)
            except BaseException:
                await self._blobs.call(writer.abort)
                raise
        meta = files.FileMeta(
            path=path,
            user_id=principal.user_id,
            size=self.size,
            content_type=content_type,
            checksum=self._sha.hexdigest(),
            backend_key=writer.key,
            updated_at=now_ms(),
        )
        try:
            replaced = await reads.call(
                lambda: files.transaction(store, lambda txn: files.save(txn, principal, meta))
            )
        except BaseException:
            await self._blobs.call(self._blobs.delete, writer.key)
            raise
        if replaced is not None:
            await delete_blob(self._blobs, replaced)
        return meta

    async def abort(self) -> None:
        """Discard everything written so far. Never raises: it runs on error paths."""
        self._batch.clear()
        async with self._lock:
            self._aborted = True
            if self._writer is None:
                return
            try:
                await self._blobs.call(self._writer.abort)
            except Exception:
                logger.exception("could not discard an aborted upload (%s)", self._writer.key)


async def delete_blob(blobs: Blobs, key: str) -> None:
    """Delete a blob no row points at any more. A failure leaves an unreachable orphan
    (logged), never a broken file, so it does not fail the request."""
    try:
        await blobs.call(blobs.delete, key)
    except Exception:
        logger.exception("could not delete blob %s", key)
