"""`actorbase backup` of a running SQLite server under write load: how long the copy
takes, and what the writes see meanwhile.

    python -m bench.backup [--rows 100000] [--seconds 3]

Not run in CI. Fills a fresh server through /api/mutate (1 KiB rows, 250 a request),
then times single REST creates from one client before, during and after a backup
taken by the real command, and prints the latency percentiles of each phase.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from tests.serverproc import ADMIN_TOKEN, Api, ServerProcess

BATCH = 250


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3, help="each phase beside the backup")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = ServerProcess(root / "data", f"sqlite:///{root / 'data' / 'actorbase.db'}")
        server.start()
        try:
            _run(server, root / "backup.tar.gz", args.rows, args.seconds)
        finally:
            server.stop()


def _run(server: ServerProcess, archive: Path, rows: int, seconds: float) -> None:
    admin = Api(server.url, ADMIN_TOKEN)
    pad = "x" * 1024
    for start in range(0, rows, BATCH):
        ops = [
            {"entity": "big", "id": str(uuid.uuid4()), "op": "set", "data": {"pad": pad, "n": n}}
            for n in range(start, min(start + BATCH, rows))
        ]
        assert admin.post("/api/mutate", json={"ops": ops}).status_code == 200
    database = server.data_dir / "actorbase.db"
    size = sum(p.stat().st_size for p in database.parent.glob("actorbase.db*"))
    print(f"database {size / 1e6:.0f} MB ({rows} rows)")
    latencies: list[tuple[str, float]] = []
    phase, stop = ["before"], threading.Event()

    def write() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            assert admin.post("/api/data/notes", json={"a": 1}).status_code == 201
            latencies.append((phase[0], time.perf_counter() - began))

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(seconds)
    phase[0] = "during"
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "actorbase", "backup", str(archive)],
        env=server.env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - began
    phase[0] = "after"
    time.sleep(seconds)
    stop.set()
    writer.join()
    assert result.returncode == 0, result.stderr
    print(f"backup {took:.1f} s, archive {archive.stat().st_size / 1e6:.0f} MB")
    for name in ("before", "during", "after"):
        xs = sorted(x * 1000 for p, x in latencies if p == name)
        print(
            f"{name:>6}: {len(xs)} writes, p50 {xs[len(xs) // 2]:.1f} ms, "
            f"p99 {xs[int(len(xs) * 0.99)]:.1f} ms, max {xs[-1]:.1f} ms"
        )


if __name__ == "__main__":
    main()
