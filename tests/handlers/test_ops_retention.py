"""Retention through the real server on both backends, with a tiny TX_RETENTION and
sweeps every 0.2 s: live queries miss no change across pruning, SSE resume past the
log's floor gets a fresh q-init, a function whose snapshot was pruned away runs again
(no lost update), refresh reuse is still caught, orphaned files are swept."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.serverproc import ADMIN_TOKEN, Api, ServerProcess
from tests.wsclient import SseClient, WsClient

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "tests" / "apps" / "retention_app.py")
RETAINED = 5


@pytest.fixture(scope="module")
def server(make_module_server, backend) -> ServerProcess:
    return make_module_server(
        backend,
        APP=APP,
        TX_RETENTION=str(RETAINED),
        SWEEP_INTERVAL="0.2",
        FUNCTION_WALL_SECONDS="30",
    )


def _floor(server: ServerProcess) -> int:
    return int(server.sql("SELECT value FROM ab_counters WHERE name = 'tx_floor'")[0][0])


def _wait_floor(server: ServerProcess, above: int, within: float = 20) -> int:
    """Wait (as a timeout, not a measurement) until pruning has passed tx `above`."""
    deadline = time.monotonic() + within
    while (floor := _floor(server)) <= above:
        assert time.monotonic() < deadline, f"tx log not pruned past {above} (floor {floor})"
        time.sleep(0.05)
    return floor


def _mutate(api: Api, *ops: dict[str, Any]) -> int:
    response = api.post("/api/mutate", json={"ops": list(ops)})
    assert response.status_code == 200, response.text
    return response.json()["tx"]


def _set(entity: str, id: str, **data: Any) -> dict[str, Any]:
    return {"entity": entity, "id": id, "op": "set", "data": data}


def _delete(entity: str, id: str) -> dict[str, Any]:
    return {"entity": entity, "id": id, "op": "delete"}


def _fill(api: Api, n: int) -> int:
    """`n` commits to an entity nobody watches: they push older commits out."""
    last = 0
    for i in range(n):
        last = _mutate(api, _set("filler", f"f{i % 3}", i=i))
    return last


def _apply(rows: dict[str, dict[str, Any]], diff: dict[str, Any]) -> None:
    for row in diff["added"]:
        rows[row["id"]] = row
    for row in diff["updated"]:
        rows[row["id"]] = {**rows[row["id"]], **row}
    for id in diff["removed"]:
        del rows[id]


def _query(api: Api, entity: str) -> dict[str, dict[str, Any]]:
    response = api.post("/api/query", json={entity: {}})
    assert response.status_code == 200, response.text
    return {r["id"]: r for r in response.json()[entity]}


def test_live_query_misses_no_change_while_the_log_is_pruned(server):
    api = Api(server.url, ADMIN_TOKEN)
    ent = "live" + uuid.uuid4().hex[:8]

    async def go() -> None:
        ws = await WsClient.connect(server.url, ADMIN_TOKEN)
        await ws.send({"type": "subscribe", "id": "s", "query": {ent: {}}})
        init = await ws.expect("q-init", id="s")
        rows = {r["id"]: r for r in init["data"][ent]}
        start = init["tx"]
        last = start
        for i in range(40):
            ops = [_set(ent, f"r{i % 7}", i=i)]
            if i % 5 == 4:
                ops.append(_delete(ent, f"r{(i + 3) % 7}"))
            last = await asyncio.to_thread(_mutate, api, *ops)
            await asyncio.to_thread(_fill, api, 2)
        seen = start
        while seen < last:
            d = await ws.expect("q-diff", id="s")
            assert d["tx"] > seen
            seen = d["tx"]
            _apply(rows, d)
        assert rows == await asyncio.to_thread(_query, api, ent)
        ws.close()

    asyncio.run(go())
    assert _wait_floor(server, 0) > 0  # the log was pruned meanwhile
    # ... and the sweep keeps it near the retention (other tests of this module write to
    # the same server, and a sweep every 0.2 s may not have run since their last write).
    deadline = time.monotonic() + 20
    while int(server.sql("SELECT count(*) FROM ab_tx")[0][0]) > RETAINED + 50:
        assert time.monotonic() < deadline, "tx log not kept near TX_RETENTION"
        time.sleep(0.05)


def test_sse_resume_past_the_floor_gets_a_fresh_q_init(server):
    api = Api(server.url, ADMIN_TOKEN)
    ent = "sse" + uuid.uuid4().hex[:8]
    _mutate(api, _set(ent, "a", v=0), _set(ent, "b", v=0))
    q = {ent: {}}
    sse = SseClient(server.url, q, ADMIN_TOKEN)
    _, seen, init = sse.next_event()
    sse.close()
    assert {r["id"] for r in init["data"][ent]} == {"a", "b"}
    # Still in the log: the gap is replayed as one q-diff.
    near = _mutate(api, _set(ent, "a", v=1))
    sse = SseClient(server.url, q, ADMIN_TOKEN, **{"Last-Event-ID": seen})
    try:
        event, event_id, d = sse.next_event()
    finally:
        sse.close()
    if _floor(server) <= int(seen):  # unless a sweep pruned it in between
        assert (event, event_id, d["tx"]) == ("q-diff", str(near), near)
        assert [u["v"] for u in d["updated"]] == [1]
    # Pruned past: the changes since are gone from the log, so a fresh q-init.
    _mutate(api, _delete(ent, "b"))
    last = _mutate(api, _set(ent, "c", v=2))
    _fill(api, RETAINED + 2)
    _wait_floor(server, int(seen))
    sse = SseClient(server.url, q, ADMIN_TOKEN, **{"Last-Event-ID": seen})
    try:
        event, _, d = sse.next_event()
        assert event == "q-init"
        assert d["tx"] >= last
        assert {r["id"]: r["v"] for r in d["data"][ent]} == {"a": 1, "c": 2}
        tx = _mutate(api, _set(ent, "a", v=3))  # and it is live again
        event, _, d = sse.next_event()
        assert (event, d["tx"], d["updated"][0]["v"]) == ("q-diff", tx, 3)
    finally:
        sse.close()


def test_function_whose_snapshot_was_pruned_runs_again(server, tmp_path):
    """The function reads the counter (1), a concurrent write sets it to 100, that
    commit is pruned from the log, then the function writes: committing its 2 would
    lose the 100. It runs again instead and writes 101."""
    api = Api(server.url, ADMIN_TOKEN)
    counter = "c" + uuid.uuid4().hex[:8]
    _mutate(api, _set("counters", counter, value=1))
    started, go = tmp_path / "started", tmp_path / "go"
    body = {"id": counter, "started": str(started), "go": str(go)}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(api.post, "/api/fn/bump_when", json=body)
        deadline = time.monotonic() + 20
        while not started.exists():
            assert time.monotonic() < deadline and not call.done(), "function never ran"
            time.sleep(0.02)
        concurrent_tx = _mutate(api, _set("counters", counter, value=100))
        _fill(api, RETAINED + 2)
        _wait_floor(server, concurrent_tx)
        go.touch()
        response = call.result(30)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == 101
    row = api.get(f"/api/data/counters/{counter}").json()["data"]
    assert row["value"] == 101


def test_refresh_reuse_is_still_caught_after_sweeps(server):
    anon = Api(server.url)
    email = f"r-{uuid.uuid4().hex[:10]}@example.com"
    signup = anon.post("/api/auth/signup", json={"email": email, "password": "correct horse b"})
    assert signup.status_code in (200, 201), signup.text
    first = signup.json()["refreshToken"]
    rotated = anon.post("/api/auth/refresh", json={"refreshToken": first})
    assert rotated.status_code == 200
    newer = rotated.json()["refreshToken"]
    floor = _floor(server)
    _fill(Api(server.url, ADMIN_TOKEN), RETAINED + 2)
    _wait_floor(server, floor)  # sweeps ran since the rotation
    # The spent token again: reuse, and the whole session is revoked.
    assert anon.post("/api/auth/refresh", json={"refreshToken": first}).status_code == 401
    assert anon.post("/api/auth/refresh", json={"refreshToken": newer}).status_code == 401
    # The revoked session stays (the session check's overlap needs it) for now.
    assert server.sql("SELECT count(*) FROM ab_sessions WHERE revoked_at IS NOT NULL")[0][0] >= 1


def test_orphaned_local_files_are_swept_and_the_rest_kept(make_server, backend):
    server = make_server(backend, SWEEP_INTERVAL="0.2", ORPHAN_FILE_GRACE="600")
    api = Api(server.url, ADMIN_TOKEN)
    upload = api.post(
        "/api/storage/upload",
        files={"file": ("kept.txt", b"has a row", "text/plain")},
        data={"path": "docs/kept.txt"},
    )
    assert upload.status_code in (200, 201), upload.text
    objects = Path(server.data_dir) / "storage" / "objects"
    old, young = objects / "ab" / ("ab" + "1" * 30), objects / "cd" / ("cd" + "2" * 30)
    for orphan in (old, young):
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_bytes(b"left by a crash")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    deadline = time.monotonic() + 20
    while old.exists():
        assert time.monotonic() < deadline, "old orphan not swept"
        time.sleep(0.05)
    assert young.exists()  # within the grace: maybe an upload about to get its row
    signed = api.get("/api/storage/docs/kept.txt")
    assert signed.status_code == 200, signed.text
    assert requests.get(signed.json()["url"], timeout=30).content == b"has a row"
    assert sum(1 for _ in objects.glob("*/*")) == 2  # the file and the young orphan


def test_orphaned_s3_objects_are_swept_and_the_rest_kept(make_server, backend, s3):
    bucket = s3.bucket()
    server = make_server(
        backend, SWEEP_INTERVAL="0.2", ORPHAN_FILE_GRACE="1", **s3.server_env(bucket)
    )
    api = Api(server.url, ADMIN_TOKEN)
    upload = api.post(
        "/api/storage/upload",
        files={"file": ("kept.txt", b"has a row", "text/plain")},
        data={"path": "docs/kept.txt"},
    )
    assert upload.status_code in (200, 201), upload.text
    client = s3.client()
    orphan, foreign = "files/ab/ab" + "1" * 30, "files/notes-by-someone-else.txt"
    for key in (orphan, foreign):
        client.put_object(Bucket=bucket, Key=key, Body=b"left behind")

    def keys() -> set[str]:
        return {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}

    deadline = time.monotonic() + 20
    while orphan in keys():
        assert time.monotonic() < deadline, "orphaned object not swept"
        time.sleep(0.1)
    left = keys()
    assert foreign in left  # not a key actorbase makes: not ours to judge
    assert len(left) == 2  # and the uploaded file's
    signed = api.get("/api/storage/docs/kept.txt")
    assert signed.status_code == 200, signed.text
    assert requests.get(signed.json()["url"], timeout=30).content == b"has a row"


def test_long_ended_sessions_are_pruned_and_live_ones_kept(server):
    anon = Api(server.url)
    email = f"s-{uuid.uuid4().hex[:10]}@example.com"
    signup = anon.post("/api/auth/signup", json={"email": email, "password": "correct horse b"})
    assert signup.status_code in (200, 201), signup.text
    user_id = signup.json()["user"]["id"]
    now = int(time.time() * 1000)
    day = 86_400_000
    old = "sess_old" + uuid.uuid4().hex[:8]
    # A session revoked 30 days ago (past REFRESH_IDLE_TTL), as an earlier sign-in left it.
    # It is written live and revoked last, so the running sweep cannot prune it between the
    # session row and its refresh token.
    server.sql(
        "INSERT INTO ab_sessions (id, user_id, device, ip, created_at, last_used_at, "
        "expires_at, revoked_at) VALUES (?, ?, 'd', 'ip', ?, ?, ?, NULL)",
        (old, user_id, now - 40 * day, now - 31 * day, now + day),
    )
    server.sql(
        "INSERT INTO ab_refresh_tokens (token_hash, session_id, issued_at) VALUES (?, ?, ?)",
        ("h" + uuid.uuid4().hex, old, now - 31 * day),
    )
    server.sql("UPDATE ab_sessions SET revoked_at = ? WHERE id = ?", (now - 30 * day, old))
    deadline = time.monotonic() + 20
    while server.sql("SELECT count(*) FROM ab_sessions WHERE id = ?", (old,))[0][0]:
        assert time.monotonic() < deadline, "long-ended session not pruned"
        time.sleep(0.05)
    tokens = "SELECT count(*) FROM ab_refresh_tokens WHERE session_id = ?"
    assert server.sql(tokens, (old,))[0][0] == 0
    live = server.sql("SELECT count(*) FROM ab_sessions WHERE user_id = ?", (user_id,))
    assert live[0][0] == 1  # the sign-up's own session
    me = Api(server.url, signup.json()["accessToken"]).get("/api/auth/me")
    assert me.status_code == 200
