"""Query latency at 100,000 rows, through the store (parse → compile → SQL → rows).

    python bench/query.py [--rows 100000] [--pg postgresql://postgres@127.0.0.1/test]

Without --pg, PostgreSQL runs when TEST_DATABASE_URL is set (on a throwaway
database). Prints p50/p99 per query; HTTP overhead is not included.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.base import Store
from store.factory import open_store
from store.query.ast import TRUE, Limits
from store.query.execute import run
from store.query.links import NO_LINKS
from store.query.parse import parse_query
from store.rows import Row

USERS, LISTS = 1000, 2000

QUERIES = {
    "indexed eq (userId) + order + limit 20": lambda r: {
        "todos": {
            "$where": {"userId": f"usr_{r.randrange(USERS)}"},
            "$order": {"createdAt": "desc"},
            "$limit": 20,
        }
    },
    "indexed eq (listId, ensure_index) + order": lambda r: {
        "todos": {
            "$where": {"listId": f"list_{r.randrange(LISTS)}"},
            "$order": {"createdAt": "desc"},
            "$limit": 20,
        }
    },
    "range (priority >= 4) + order + limit 20": lambda r: {
        "todos": {
            "$where": {"priority": {"$gte": 4}, "done": False},
            "$order": {"createdAt": "desc"},
            "$limit": 20,
        }
    },
    "nested link: 20 lists x 5 todos each": lambda r: {
        "lists": {
            "$where": {"createdAt": {"$gte": r.randrange(LISTS - 20)}},
            "$limit": 20,
            "todos": {"$order": {"createdAt": "desc"}, "$limit": 5},
        }
    },
}


def load(store: Store, rows: int) -> None:
    store.migrate()
    rng = random.Random(1)
    with store.write() as txn:
        tx = txn.next_tx()
        for i in range(LISTS):
            txn.insert(Row("lists", f"list_{i}", {"name": f"List {i}"}, i, i, None), tx)
        for i in range(rows):
            data = {
                "title": f"todo {i}",
                "done": rng.random() < 0.5,
                "priority": rng.randrange(6),
                "listId": f"list_{rng.randrange(LISTS)}",
            }
            owner = f"usr_{rng.randrange(USERS)}"
            txn.insert(Row("todos", f"t{i:06d}", data, 10_000 + i, 10_000 + i, owner), tx)
    store.ensure_index("todos", ("listId",))


def measure(store: Store, runs: int) -> None:
    rng = random.Random(2)
    limits = Limits()
    for name, make in QUERIES.items():
        times = []
        for i in range(runs + 20):
            body = make(rng)
            start = time.perf_counter()
            query = parse_query(body, NO_LINKS, limits)
            result = store.read(lambda txn, q=query: run(txn, q, lambda entity: TRUE))
            elapsed = (time.perf_counter() - start) * 1000
            assert result["tx"] >= 1
            if i >= 20:  # warm-up
                times.append(elapsed)
        times.sort()
        p50 = statistics.median(times)
        p99 = times[int(len(times) * 0.99) - 1]
        print(f"  {name:<44} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")


def bench(label: str, url: str, rows: int, runs: int) -> None:
    store = open_store(url, 4)
    try:
        start = time.perf_counter()
        load(store, rows)
        took = time.perf_counter() - start
        print(f"{label}: loaded {rows:,} todos + {LISTS:,} lists in {took:.1f} s")
        measure(store, runs)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--pg", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench("sqlite", f"sqlite:///{tmp}/bench.db", args.rows, args.runs)
    if args.pg:
        from tests.serverproc import PostgresDatabase

        db = PostgresDatabase(args.pg)
        try:
            bench("postgresql", db.url, args.rows, args.runs)
        finally:
            db.drop()


if __name__ == "__main__":
    main()
