"""Upload throughput on local-disk storage beside a raw disk-write baseline.

Starts its own server (SQLite, local storage in a temp directory), uploads 1 MiB
and 50 MiB files one at a time over HTTP, and times the same bytes written straight
to a file in the same directory with the same durability (fsync, then rename), so
the two figures show what the HTTP, multipart, checksum and metadata layers cost.
Prints MB/s (10^6 bytes per second) for each. Not run in CI.

    python -m bench.storage [--rounds 20]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.serverproc import ADMIN_TOKEN, ServerProcess

MIB = 1024 * 1024
BOUNDARY = "benchBoundary0123456789"


def _body(path: str, content: bytes) -> bytes:
    return b"".join(
        [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="path"\r\n\r\n{path}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="b.png"'
            "\r\nContent-Type: image/png\r\n\r\n".encode(),
            content,
            f"\r\n--{BOUNDARY}--\r\n".encode(),
        ]
    )


def _upload(session: requests.Session, url: str, path: str, content: bytes) -> None:
    response = session.post(
        url + "/api/storage/upload",
        data=_body(path, content),
        headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
        timeout=300,
    )
    response.raise_for_status()


def _raw_write(directory: Path, name: str, content: bytes) -> None:
    """What local storage does to disk, without anything in front: write the bytes
    (plus the SHA-256 it also computes), fsync, rename into place."""
    hashlib.sha256(content).hexdigest()
    tmp, final = directory / (name + ".part"), directory / name
    with tmp.open("wb") as handle:
        for at in range(0, len(content), MIB):
            handle.write(content[at : at + MIB])
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, final)


def _mb_per_s(rounds: int, size: int, run: Callable[[int], None]) -> float:
    started = time.perf_counter()
    for i in range(rounds):
        run(i)
    return rounds * size / (time.perf_counter() - started) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="uploads of 1 MiB (50 MiB: 1/4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ab-bench-storage-") as tmp:
        data_dir = Path(tmp)
        server = ServerProcess(
            data_dir,
            f"sqlite:///{data_dir / 'actorbase.db'}",
            MAX_UPLOAD_BYTES=64 * MIB,
            RATE_LIMIT=0,
        ).start()
        raw_dir = data_dir / "raw"
        raw_dir.mkdir()
        session = requests.Session()
        print(f"# storage upload throughput, {platform.node()}, {os.cpu_count()} CPUs")
        print(f"{'file':>8}  {'rounds':>6}  {'upload MB/s':>11}  {'raw disk MB/s':>13}  ratio")
        try:
            for size, rounds in ((MIB, args.rounds), (50 * MIB, max(2, args.rounds // 4))):
                content = b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)
                _upload(session, server.url, "warmup.png", content)  # first-use costs out
                http = _mb_per_s(
                    rounds, size, lambda i, c=content: _upload(session, server.url, f"b{i}.png", c)
                )
                raw = _mb_per_s(rounds, size, lambda i, c=content: _raw_write(raw_dir, f"r{i}", c))
                label = f"{size // MIB} MiB"
                print(f"{label:>8}  {rounds:>6}  {http:>11.1f}  {raw:>13.1f}  {http / raw:.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
