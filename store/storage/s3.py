"""S3 blobs (``STORAGE_URL=s3://bucket/prefix``) through boto3, on AWS or any
S3-compatible server (S3_ENDPOINT_URL). Credentials and region come the usual AWS
way (environment, shared config, instance role), read by boto3 itself.

Small files are one PUT; from PART_BYTES on, a multipart upload, so no more than
one part is ever held in memory. An aborted multipart upload is aborted on S3 too,
leaving no parts behind. Downloads are boto3 presigned GETs straight from S3.
"""

from __future__ import annotations

import re
import time
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from config.settings import ConfigError
from store.storage.base import THREADS, Blobs, BlobWriter, disposition, new_key

PART_BYTES = 5 * 1024 * 1024
"""S3's minimum part size (except the last): the least memory per upload."""


class S3Writer(BlobWriter):
    def __init__(self, client: Any, bucket: str, key: str, content_type: str) -> None:
        self._client = client
        self._bucket = bucket
        self.key = key
        self._content_type = content_type
        # One buffer per upload, grown to at most a part, then refilled in place and
        # sent as it is: no per-part allocations for the allocator to keep around.
        self._buffer = bytearray()
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, object]] = []

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            taken = min(len(view), PART_BYTES - self._filled)
            self._buffer[self._filled : self._filled + taken] = view[:taken]
            self._filled += taken
            view = view[taken:]
            if self._filled == PART_BYTES:
                self._upload_part(self._buffer)
                self._filled = 0

    def _rest(self) -> bytearray:
        """What is buffered, for the last request (the buffer is not reused after)."""
        del self._buffer[self._filled :]
        return self._buffer

    def _upload_part(self, part: bytearray) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self.key, ContentType=self._content_type
            )["UploadId"]
        number = len(self._parts) + 1
        response = self._client.upload_part(
            Bucket=self._bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def commit(self) -> None:
        if self._upload_id is None:
            self._client.put_object(
                Bucket=self._bucket,
                Key=self.key,
                Body=self._rest(),
                ContentType=self._content_type,
            )
        else:
            if self._filled:
                self._upload_part(self._rest())
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._upload_id = None  # complete: nothing left for `abort` to discard
        self._buffer = bytearray()

    def abort(self) -> None:
        self._buffer = bytearray()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self.key, UploadId=upload_id
            )


class S3Blobs(Blobs):
    label = "s3"

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None) -> None:
        super().__init__()
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=botocore.config.Config(
                signature_version="s3v4",
                max_pool_connections=THREADS * 2,
                retries={"mode": "standard"},
            ),
        )
        try:
            self._client.head_bucket(Bucket=bucket)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            where = endpoint_url or "AWS"
            raise ConfigError(
                f"STORAGE_URL: bucket {bucket!r} is not usable at {where}: {exc}"
            ) from None

    def _key(self) -> str:
        return f"{self.prefix}/{new_key()}" if self.prefix else new_key()

    def writer(self, content_type: str) -> BlobWriter:
        return S3Writer(self._client, self.bucket, self._key(), content_type)

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=key)

    def scan(self, after: str | None, limit: int) -> tuple[list[tuple[str, float]], str | None]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        ours = re.compile(re.escape(prefix) + r"[0-9a-f]{2}/[0-9a-f]{32}")
        page = self._client.list_objects_v2(
            Bucket=self.bucket, Prefix=prefix, StartAfter=after or "", MaxKeys=limit
        )
        listed = page.get("Contents", [])
        found = [
            (o["Key"], o["LastModified"].timestamp()) for o in listed if ours.fullmatch(o["Key"])
        ]
        return found, listed[-1]["Key"] if listed and page.get("IsTruncated") else None

    def url(self, key: str, path: str, content_type: str, expires_at: int, base_url: str) -> str:
        return self._client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition(path, content_type),
            },
            ExpiresIn=max(1, expires_at - int(time.time())),
        )
