"""Sign-in throughput against raw bcrypt, and IOLoop latency during a sign-in storm.

Starts its own server (SQLite by default; --database-url for PostgreSQL) with
BCRYPT_ROUNDS=12 and a high RATE_LIMIT, then:
1. baseline: raw bcrypt checks/s at the same cost on AUTH_THREADS threads, here;
2. storm: 8 concurrent clients signing in for --seconds; signins/s and p99;
3. meanwhile one client polls GET /api/admin/health; its p99 shows whether
   bcrypt ever blocks the IOLoop.
Not run in CI.

    python -m bench.auth [--database-url postgresql://…] [--seconds 20]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import tempfile
import threading
import time
from pathlib import Path

import bcrypt
import requests

from tests.serverproc import PostgresDatabase, ServerProcess

ROUNDS = 12
PASSWORD = "correct horse battery"


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) >= 2 else samples[0]


def raw_bcrypt_rate(threads: int, seconds: float) -> float:
    """bcrypt checks per second at ROUNDS on `threads` threads (what the server can
    at best reach, since each sign-in is one check)."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(ROUNDS))
    done = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            bcrypt.checkpw(PASSWORD.encode(), hashed)
            with lock:
                done += 1

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
    return done / (time.monotonic() - start)


def storm(url: str, emails: list[str], seconds: float) -> tuple[list[float], list[float], float]:
    """Sign in from one thread per email while another polls health; returns the
    sign-in latencies, the health latencies (ms) and the storm's wall time."""
    stop = threading.Event()
    signins: list[float] = []
    health: list[float] = []

    def signer(email: str) -> None:
        session = requests.Session()
        while not stop.is_set():
            t0 = time.perf_counter()
            r = session.post(
                url + "/api/auth/signin", json={"email": email, "password": PASSWORD}, timeout=60
            )
            r.raise_for_status()
            signins.append((time.perf_counter() - t0) * 1000)

    def poller() -> None:
        session = requests.Session()
        while not stop.is_set():
            t0 = time.perf_counter()
            session.get(url + "/api/admin/health", timeout=10).raise_for_status()
            health.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)

    threads = [threading.Thread(target=signer, args=(e,)) for e in emails]
    threads.append(threading.Thread(target=poller))
    start = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return signins, health, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="postgresql://… (a throwaway database is made)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="AUTH_THREADS")
    args = parser.parse_args()

    print(f"raw bcrypt baseline: cost {ROUNDS}, {args.threads} threads ...", flush=True)
    raw = raw_bcrypt_rate(args.threads, min(args.seconds, 10))

    db = PostgresDatabase(args.database_url) if args.database_url else None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        server = ServerProcess(
            data,
            db.url if db else f"sqlite:///{data / 'actorbase.db'}",
            BCRYPT_ROUNDS=ROUNDS,
            AUTH_THREADS=args.threads,
            RATE_LIMIT=10_000_000,
        ).start()
        try:
            emails = [f"bench{i}@example.com" for i in range(args.clients)]
            for email in emails:
                requests.post(
                    server.url + "/api/auth/signup",
                    json={"email": email, "password": PASSWORD},
                    timeout=60,
                ).raise_for_status()
            signins, health, wall = storm(server.url, emails, args.seconds)
        finally:
            server.stop()
            if db:
                db.drop()

    rate = len(signins) / wall
    backend = "postgresql" if db else "sqlite"
    print(f"backend {backend}, BCRYPT_ROUNDS={ROUNDS}, AUTH_THREADS={args.threads}")
    print(f"raw bcrypt:      {raw:7.2f} checks/s")
    print(
        f"signin:          {rate:7.2f} signins/s at {args.clients} clients "
        f"({rate / raw:.0%} of raw; target >= 80%), "
        f"p50 {statistics.median(signins):.0f} ms, p99 {p99(signins):.0f} ms, n={len(signins)}"
    )
    print(
        f"health in storm: p50 {statistics.median(health):.1f} ms, "
        f"p99 {p99(health):.1f} ms (target < 20 ms), n={len(health)}"
    )


if __name__ == "__main__":
    main()
