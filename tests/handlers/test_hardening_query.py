"""Bounded query work per user (issue 12): `$like` on the loop, coalesced re-reads,
the response byte cap with linked rows read once, on both backends."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.serverproc import ADMIN_TOKEN, Api, error_of
from tests.wsclient import SseClient, WsClient

FN_APP = str(Path(__file__).parents[1] / "apps" / "fn_app.py")
SMALL_CAP = 65_536


def entity() -> str:
    return "h" + uuid.uuid4().hex[:10]


def test_like_on_a_long_title_does_not_hold_the_loop(server):
    """A pattern that made the backtracking matcher run for hours: health still answers
    within 100 ms while the diff is computed, and the diffs are right."""
    ent = entity()
    admin = Api(server.url, ADMIN_TOKEN)
    stuck = "%a" * 8 + "%b"  # never matches a title of a's
    hit = "%a" * 9 + "%"

    async def go() -> None:
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        for sub, pattern in (("miss", stuck), ("hit", hit)):
            query = {ent: {"$where": {"title": {"$like": pattern}}}}
            await c.send({"type": "subscribe", "id": sub, "query": query})
            assert (await c.expect("q-init", id=sub))["data"] == {ent: []}
        loop = asyncio.get_running_loop()
        r = await loop.run_in_executor(
            None, lambda: admin.post(f"/api/data/{ent}", json={"id": "long", "title": "a" * 600})
        )
        assert r.status_code == 201, r.text
        answered = []
        for _ in range(3):  # the best of three: the box is shared, the loop must be free
            started = time.perf_counter()
            health = await loop.run_in_executor(
                None, lambda: requests.get(server.url + "/api/admin/health", timeout=5)
            )
            answered.append(time.perf_counter() - started)
            assert health.status_code == 200
        assert min(answered) < 0.1, answered
        d = await c.expect("q-diff", id="hit")
        assert [row["id"] for row in d["added"]] == ["long"]
        assert d["tx"] == r.json()["tx"]
        assert [m for m in await c.quiet(0.3) if m.get("id") == "miss"] == []
        c.close()

    asyncio.run(go())


# -- the byte cap, and linked rows read once ------------------------------------------------


def _names() -> tuple[str, str, str]:
    """(parent entity, link key, target entity): `key` follows `keyId` to `keys`."""
    key = "l" + uuid.uuid4().hex[:8]
    return "p" + uuid.uuid4().hex[:8] + "s", key, key + "s"


def _too_large(response: requests.Response, cap: int) -> None:
    error = error_of(response)
    assert response.status_code == 400 and error["code"] == "QUERY_TOO_COMPLEX", error
    assert error["message"] == (
        f"Query result exceeds {cap} bytes; narrow it with $where, $limit or $fields"
    )


def test_one_large_row_linked_from_a_thousand_parents_is_refused(server):
    """200 KB read once but sent per parent would be a 200 MB response: a clear 400."""
    admin = Api(server.url, ADMIN_TOKEN)
    parents, key, targets = _names()
    r = admin.post(f"/api/data/{targets}", json={"id": "big", "name": "B", "blob": "x" * 200_000})
    assert r.status_code == 201, r.text
    ops = [
        {"entity": parents, "id": f"p{i:04}", "op": "set", "data": {f"{key}Id": "big", "n": i}}
        for i in range(1000)
    ]
    assert admin.post("/api/mutate", json={"ops": ops}).status_code == 200
    r = admin.post("/api/query", json={parents: {"$limit": 1000, key: {}}})
    _too_large(r, 16 * 1024 * 1024)
    # Narrowed with $fields, the same links fit, each parent holding the row.
    narrow = {parents: {"$limit": 1000, "$fields": ["n"], key: {"$fields": ["name"]}}}
    r = admin.post("/api/query", json=narrow)
    assert r.status_code == 200, r.text
    rows = r.json()[parents]
    assert len(rows) == 1000
    assert all(row[key] == {"id": "big", "name": "B"} for row in rows)


def test_nested_links_stay_right(server):
    """Forward (shared) and reverse links, with $fields, as the contract nests them."""
    admin = Api(server.url, ADMIN_TOKEN)
    parents, key, targets = _names()
    ops = [
        {"entity": targets, "id": "t1", "op": "set", "data": {"name": "one"}},
        {"entity": targets, "id": "t2", "op": "set", "data": {"name": "two"}},
    ]
    links = {"a": "t1", "b": "t1", "c": "t2", "d": None, "e": "gone"}
    for n, (pid, target) in enumerate(links.items()):
        data = {"n": n} if target is None else {"n": n, f"{key}Id": target}
        ops.append({"entity": parents, "id": pid, "op": "set", "data": data})
    assert admin.post("/api/mutate", json={"ops": ops}).status_code == 200
    query = {parents: {"$order": {"n": "asc"}, "$fields": ["n"], key: {"$fields": ["name"]}}}
    rows = admin.post("/api/query", json=query).json()[parents]
    assert rows == [
        {"id": "a", "n": 0, key: {"id": "t1", "name": "one"}},
        {"id": "b", "n": 1, key: {"id": "t1", "name": "one"}},
        {"id": "c", "n": 2, key: {"id": "t2", "name": "two"}},
        {"id": "d", "n": 3, key: None},
        {"id": "e", "n": 4, key: None},
    ]
    query = {targets: {"$order": {"name": "asc"}, parents: {"$order": {"n": "desc"}}}}
    rows = admin.post("/api/query", json=query).json()[targets]
    assert [(t["id"], [p["id"] for p in t[parents]]) for t in rows] == [
        ("t1", ["b", "a"]),
        ("t2", ["c"]),
    ]
    assert rows[0][parents][0][f"{key}Id"] == "t1"


@pytest.fixture(scope="module")
def capped(make_module_server, backend):
    return make_module_server(backend, APP=FN_APP, QUERY_MAX_BYTES=SMALL_CAP)


def _fill(api: Api, ent: str, rows: int, size: int) -> None:
    ops = [
        {"entity": ent, "id": f"r{i:03}", "op": "set", "data": {"n": i, "blob": "y" * size}}
        for i in range(rows)
    ]
    assert api.post("/api/mutate", json={"ops": ops}).status_code == 200


def test_every_read_channel_is_capped(capped):
    """/api/query, data lists, functions' ctx.db.query, WebSocket and SSE q-init."""
    admin = Api(capped.url, ADMIN_TOKEN)
    ent = entity()
    _fill(admin, ent, 10, 10_000)  # 100 KB in all, 10 KB a row
    _too_large(admin.post("/api/query", json={ent: {}}), SMALL_CAP)
    assert len(admin.post("/api/query", json={ent: {"$limit": 3}}).json()[ent]) == 3
    assert len(admin.post("/api/query", json={ent: {"$fields": ["n"]}}).json()[ent]) == 10
    _too_large(admin.get(f"/api/data/{ent}?limit=100"), SMALL_CAP)
    assert len(admin.get(f"/api/data/{ent}?limit=3").json()["data"]) == 3
    _too_large(admin.post("/api/fn/run_query", json={"query": {ent: {}}}), SMALL_CAP)
    r = admin.post("/api/fn/run_query", json={"query": {ent: {"$limit": 2}}})
    assert len(r.json()["result"][ent]) == 2

    async def ws() -> None:
        c = await WsClient.connect(capped.url, ADMIN_TOKEN)
        await c.send({"type": "subscribe", "id": "big", "query": {ent: {}}})
        error = (await c.expect("error", id="big"))["error"]
        assert error["code"] == "QUERY_TOO_COMPLEX" and error["status"] == 400
        await c.send({"type": "subscribe", "id": "small", "query": {ent: {"$limit": 2}}})
        assert len((await c.expect("q-init", id="small"))["data"][ent]) == 2
        c.close()

    asyncio.run(ws())
    # SSE: the q-init's failure is the answer, in JSON with its status (no stream that
    # pings on with nothing to follow); an EventSource gives up on it.
    sse = SseClient(capped.url, {ent: {}}, ADMIN_TOKEN)
    try:
        assert sse.response.status_code == 400
        assert sse.response.headers["Content-Type"].startswith("application/json")
        assert error_of(sse.response)["code"] == "QUERY_TOO_COMPLEX"
    finally:
        sse.close()
    sse = SseClient(capped.url, {ent: {"$limit": 2}}, ADMIN_TOKEN)
    try:
        assert sse.response.status_code == 200 and sse.next_event()[0] == "q-init"
    finally:
        sse.close()


def test_a_re_read_past_the_cap_ends_the_live_query(capped):
    """A live query re-read per commit ($offset) fails with the cap once it outgrows it."""
    admin = Api(capped.url, ADMIN_TOKEN)
    ent = entity()
    _fill(admin, ent, 2, 10)

    async def go() -> None:
        c = await WsClient.connect(capped.url, ADMIN_TOKEN)
        query = {ent: {"$offset": 1, "$order": {"n": "asc"}}}
        await c.send({"type": "subscribe", "id": "s", "query": query})
        assert [r["id"] for r in (await c.expect("q-init", id="s"))["data"][ent]] == ["r001"]
        _fill(admin, ent, 8, 10_000)
        error = (await c.expect("error", id="s"))["error"]
        assert error["code"] == "QUERY_TOO_COMPLEX"
        c.close()

    asyncio.run(go())


def test_a_re_read_past_the_cap_ends_the_sse_stream(capped):
    """On SSE the stream's one live query is over: `event: error`, then the end (an
    EventSource reconnects, and its q-init's failure is then a JSON 400)."""
    admin = Api(capped.url, ADMIN_TOKEN)
    ent = entity()
    _fill(admin, ent, 2, 10)
    sse = SseClient(capped.url, {ent: {"$offset": 1, "$order": {"n": "asc"}}}, ADMIN_TOKEN)
    try:
        event, _, data = sse.next_event()
        assert event == "q-init" and [r["id"] for r in data["data"][ent]] == ["r001"]
        _fill(admin, ent, 8, 10_000)
        event, _, data = sse.next_event()
        assert event == "error" and data["error"]["code"] == "QUERY_TOO_COMPLEX", (event, data)
        with pytest.raises(EOFError):
            sse.next_event()
    finally:
        sse.close()
    again = SseClient(capped.url, {ent: {"$offset": 1, "$order": {"n": "asc"}}}, ADMIN_TOKEN)
    try:
        assert again.response.status_code == 400
        assert error_of(again.response)["code"] == "QUERY_TOO_COMPLEX"
    finally:
        again.close()


# -- re-reads of non-flat live queries coalesced ---------------------------------------------


def _apply(state: dict[str, dict], diff: dict) -> None:
    """A client applying a q-diff: removed, then added, then updated (null: gone)."""
    for rid in diff["removed"]:
        del state[rid]
    for row in diff["added"]:
        state[row["id"]] = _present(row)
    for fields in diff["updated"]:
        state[fields["id"]] = _present({**state[fields["id"]], **fields})


def _present(row: dict) -> dict:
    """A row as a client applying diffs knows it: a null field is no field."""
    return {k: v for k, v in row.items() if v is not None}


def test_a_burst_of_commits_coalesces_re_reads(server):
    """Queries re-read per commit ($offset, links) get fewer diffs than commits under a
    burst, and a client applying them ends with exactly what a fresh query returns."""
    admin = Api(server.url, ADMIN_TOKEN)
    parents, key, targets = _names()
    queries = {
        "offset": {parents: {"$offset": 1, "$order": {"n": "asc"}}},
        "links": {parents: {"$order": {"n": "asc"}, key: {}}},
    }
    commits = 60

    async def go() -> None:
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        writer = await WsClient.connect(server.url, ADMIN_TOKEN)
        states: dict[str, dict[str, dict]] = {}
        for sub, query in queries.items():
            await c.send({"type": "subscribe", "id": sub, "query": query})
            init = await c.expect("q-init", id=sub)
            states[sub] = {row["id"]: _present(row) for row in init["data"][parents]}
        for i in range(commits):  # sent without waiting: the commits arrive in a burst
            if i % 4 == 3:
                op = {"entity": targets, "id": f"t{i % 3}", "op": "set", "data": {"v": i}}
            else:
                row = {"n": (i * 5) % 11, f"{key}Id": f"t{i % 3}", "v": i}
                op = {"entity": parents, "id": f"p{i % 7}", "op": "set", "data": row}
            if i == commits - 1:  # the last commit changes both results
                op = {"entity": parents, "id": "pz", "op": "set", "data": {"n": 99}}
            await writer.send({"type": "mutate", "id": f"m{i}", "ops": [op]})
        last = max([(await writer.expect("mutate-ok", id=f"m{i}"))["tx"] for i in range(commits)])
        diffs = {sub: 0 for sub in queries}
        pending = set(queries)
        while pending:
            m = await c.expect("q-diff")
            _apply(states[m["id"]], m)
            diffs[m["id"]] += 1
            if m["tx"] >= last:
                pending.discard(m["id"])
        for sub, query in queries.items():
            fresh = admin.post("/api/query", json=query).json()[parents]
            assert states[sub] == {row["id"]: _present(row) for row in fresh}, sub
            assert 0 < diffs[sub] < commits, (sub, diffs)
        c.close()
        writer.close()

    asyncio.run(go())
