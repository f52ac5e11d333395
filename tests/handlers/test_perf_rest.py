"""The create path as issue 13's perf-rest slice left it, over real HTTP on both
backends: a burst of a user's creates commits in groups (on PostgreSQL one multi-row
INSERT for the group's rows and one for its tx log), each request still gets its own
row, tx and error; ids and request ids stay unique and well formed."""

from __future__ import annotations

import concurrent.futures
import re
import threading
import uuid

from tests.handlers.accounts import signup
from tests.serverproc import Api, error_of


def _burst(api: Api, calls: list[tuple[str, dict]]) -> list:
    """Every (path, body) posted at once from its own thread and connection."""
    apis = [Api(api.base, api.token) for _ in calls]
    for one in apis:
        one.get("/api/admin/health")
    gate = threading.Barrier(len(calls))

    def post(i: int):
        gate.wait()
        return apis[i].post(calls[i][0], json=calls[i][1])

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(post, range(len(calls))))


def test_a_burst_of_creates_answers_each_request_with_its_own_row(anon):
    user = signup(anon)
    entity = "pr_" + uuid.uuid4().hex[:10]
    taken = "dup-" + uuid.uuid4().hex[:8]
    calls = [(f"/api/data/{entity}", {"n": n}) for n in range(40)]
    calls[10:10] = [(f"/api/data/{entity}", {"id": taken, "n": -1})] * 4
    responses = _burst(user.api, calls)
    fresh = [r for (_, body), r in zip(calls, responses, strict=True) if "id" not in body]
    assert [r.status_code for r in fresh] == [201] * 40
    assert sorted(r.json()["data"]["n"] for r in fresh) == list(range(40))
    dups = [r for (_, body), r in zip(calls, responses, strict=True) if "id" in body]
    assert sorted(r.status_code for r in dups) == [201, 409, 409, 409]
    assert {error_of(r)["code"] for r in dups if r.status_code == 409} == {"CONFLICT"}
    txs = [r.json()["tx"] for r in responses if r.status_code == 201]
    assert len(set(txs)) == 41
    for r in fresh:
        row = r.json()["data"]
        assert uuid.UUID(row["id"]).version == 4 and str(uuid.UUID(row["id"])) == row["id"]
        got = user.api.get(f"/api/data/{entity}/{row['id']}")
        assert got.status_code == 200 and got.json()["data"] == row
    listed = user.api.get(f"/api/data/{entity}", params={"limit": 100}).json()
    assert listed["total"] == 41


def test_request_ids_are_new_for_each_request(anon):
    seen = [anon.get("/api/admin/health").headers["X-Request-ID"] for _ in range(50)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in seen)
    assert len(set(seen)) == 50
