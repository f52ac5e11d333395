"""A 50 MiB upload is streamed to storage in bounded memory, on local disk and on S3
(moto's standalone server), and comes back byte for byte."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.serverproc import ADMIN_TOKEN, Api, ServerProcess

MIB = 1024 * 1024
SIZE = 50 * MIB
BOUNDARY = "largeUploadBoundary0123456789"


@pytest.fixture(scope="module")
def env(make_module_server, backend, storage, request) -> tuple[ServerProcess, Any, str]:
    extra: dict[str, Any] = {"MAX_UPLOAD_BYTES": 64 * MIB}
    client, bucket = None, ""
    if storage == "s3":
        moto = request.getfixturevalue("s3")
        bucket = moto.bucket()
        client = moto.client()
        extra.update(moto.server_env(bucket))
    return make_module_server(backend, **extra), client, bucket


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}


def png_stream(size: int, digest: Any) -> Iterator[bytes]:
    """`size` bytes that start like a PNG, generated 1 MiB at a time."""
    block = os.urandom(MIB)
    first = b"\x89PNG\r\n\x1a\n" + block[8:]
    sent = 0
    while sent < size:
        piece = (first if sent == 0 else block)[: size - sent]
        digest.update(piece)
        sent += len(piece)
        yield piece


def form_stream(path: str, size: int, digest: Any) -> Iterator[bytes]:
    """A multipart body, produced as it is sent (chunked), never whole in memory."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="path"\r\n\r\n{path}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"'
        "\r\nContent-Type: image/png\r\n\r\n"
    ).encode()
    yield from png_stream(size, digest)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(server: ServerProcess, path: str, size: int) -> tuple[requests.Response, str]:
    digest = hashlib.sha256()
    response = requests.post(
        server.url + "/api/storage/upload",
        data=form_stream(path, size, digest),
        headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
        timeout=120,
    )
    return response, digest.hexdigest()


def test_a_50_mib_upload_streams_in_bounded_memory(env, storage):
    server, s3_client, bucket = env
    assert server.proc is not None
    # Warm up: imports, pools and (on S3) the multipart path are in place before measuring.
    warm, _ = upload(server, "warm.png", 6 * MIB)
    assert warm.status_code == 201, warm.text
    before = memory_kib(server.proc.pid)
    response, sha = upload(server, "big.png", SIZE)
    after = memory_kib(server.proc.pid)
    assert response.status_code == 201, response.text
    assert response.json()["size"] == SIZE
    growth_mib = (after["VmRSS"] - before["VmRSS"]) / 1024
    peak_mib = (after["VmHWM"] - before["VmRSS"]) / 1024
    print(f"{storage}: RSS growth {growth_mib:.1f} MiB, peak above start {peak_mib:.1f} MiB")
    assert growth_mib < 20
    assert peak_mib < 20

    url = Api(server.url, ADMIN_TOKEN).get("/api/storage/big.png").json()["url"]
    digest, size = hashlib.sha256(), 0
    with requests.get(url, stream=True, timeout=120) as download:
        assert download.status_code == 200
        for chunk in download.iter_content(MIB):
            digest.update(chunk)
            size += len(chunk)
    assert (size, digest.hexdigest()) == (SIZE, sha)
    if s3_client is not None:  # stored as a multipart upload, none left in progress
        listing = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
        etags = [o["ETag"] for o in listing if o["Size"] == SIZE]
        assert len(etags) == 1
        assert etags[0].strip('"').endswith("-10")
        assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
