"""Two server processes writing to one PostgreSQL database keep tx ids strictly
increasing in commit order."""

from __future__ import annotations

import concurrent.futures

import pytest

from tests.serverproc import ADMIN_TOKEN, Api


@pytest.fixture
def two_nodes(two_servers):
    _, nodes = two_servers
    return [Api(n.url, ADMIN_TOKEN) for n in nodes]


def test_tx_follows_commit_order_across_processes(two_nodes):
    a, b = two_nodes
    # Sequential writes alternating between nodes: each acknowledged write happened
    # before the next was sent, so its tx must be smaller.
    txs = [(a if i % 2 else b).post("/api/data/seq", json={"i": i}).json()["tx"] for i in range(40)]
    assert txs == sorted(txs) and len(set(txs)) == 40

    def burst(api: Api, n: int) -> list[int]:
        return [api.post("/api/data/burst", json={"n": n, "i": i}).json()["tx"] for i in range(30)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(burst, (a, b)[n % 2], n) for n in range(8)]
        per_client = [f.result() for f in futures]
    for txs_of_client in per_client:
        assert txs_of_client == sorted(txs_of_client)
    every = sorted(tx for client in per_client for tx in client)
    assert len(set(every)) == 240
    assert every == list(range(every[0], every[0] + 240))  # no gaps, no duplicates
    assert a.get("/api/data/burst").json()["total"] == 240
    assert b.get("/api/data/burst").json()["total"] == 240
