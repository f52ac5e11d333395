"""SSE /api/subscribe against the real server: frames, auth, heartbeat, resume."""

from __future__ import annotations

import uuid

import requests

from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, error_of
from tests.wsclient import SseClient

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def entity() -> str:
    return "s" + uuid.uuid4().hex[:10]


def mutate(server, ops: list[dict], token: str = ADMIN_TOKEN) -> int:
    r = requests.post(
        server.url + "/api/mutate",
        json={"ops": ops},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["tx"]


def test_init_and_diffs(server):
    ent = entity()
    sse = SseClient(server.url, {ent: {"$where": {"done": False}}}, ADMIN_TOKEN)
    assert sse.response.headers["Content-Type"].startswith("text/event-stream")
    event, event_id, data = sse.next_event()
    assert event == "q-init" and data == {"id": "sub-1", "data": {ent: []}, "tx": data["tx"]}
    assert event_id == str(data["tx"])
    tx = mutate(server, [{"entity": ent, "id": "a", "op": "set", "data": {"done": False}}])
    event, event_id, data = sse.next_event()
    assert (event, event_id, data["id"], data["tx"]) == ("q-diff", str(tx), "sub-1", tx)
    assert list(data) == ["id", "added", "updated", "removed", "tx"]
    tx = mutate(server, [{"entity": ent, "id": "a", "op": "merge", "data": {"done": True}}])
    event, _, data = sse.next_event()
    assert (event, data["removed"], data["tx"]) == ("q-diff", ["a"], tx)
    health = requests.get(server.url + "/api/admin/health", timeout=5).json()
    assert health["connections"]["http"] >= 1  # the open stream
    sse.close()


def test_errors_and_token_parameter(server, anon):
    r = requests.get(server.url + "/api/subscribe", params={"q": "{}"}, timeout=5)
    assert error_of(r)["code"] == "UNAUTHENTICATED"
    for q in ("{nope", '{"BAD": {}}', "[]"):
        r = requests.get(server.url + "/api/subscribe", params={"q": q}, headers=AUTH, timeout=5)
        assert error_of(r)["code"] == "INVALID_ARGUMENT"
    r = requests.get(server.url + "/api/subscribe", headers=AUTH, timeout=5)
    assert error_of(r)["code"] == "INVALID_ARGUMENT"
    user = signup(anon)
    ent = entity()
    mutate(server, [{"entity": ent, "id": "mine", "op": "set", "data": {}}], user.access)
    mutate(server, [{"entity": ent, "id": "admins", "op": "set", "data": {}}])
    r = requests.get(
        server.url + "/api/subscribe",
        params={"q": f'{{"{ent}": {{}}}}', "token": user.access},
        stream=True,
        timeout=10,
    )
    lines = r.iter_lines(decode_unicode=True)
    assert next(lines) == "event: q-init"
    next(lines)
    data = next(lines)
    assert '"mine"' in data and '"admins"' not in data  # the owner-only rule applies
    r.close()


def test_heartbeat_comment(make_server, backend):
    # Heartbeats are staggered over the interval: every stream still gets its own.
    server = make_server(backend, SSE_HEARTBEAT="0.4")
    streams = [SseClient(server.url, {entity(): {}}, ADMIN_TOKEN) for _ in range(6)]
    for sse in streams:
        assert sse.next_event()[0] == "q-init"
    for sse in streams:
        for _ in range(2):
            assert sse.next_event(until=lambda line: True) == ("comment", None, ": ping")
        sse.close()


def test_resume_with_last_event_id(server):
    ent = entity()
    q = {ent: {"$order": {"n": "asc"}, "$limit": 3}}
    for i in range(4):
        mutate(server, [{"entity": ent, "id": f"r{i}", "op": "set", "data": {"n": i}}])
    sse = SseClient(server.url, q, ADMIN_TOKEN)
    _, seen, init = sse.next_event()
    assert [r["id"] for r in init["data"][ent]] == ["r0", "r1", "r2"]
    sse.close()
    # While disconnected: one row leaves (r3 refills), one changes, one enters.
    mutate(server, [{"entity": ent, "id": "r0", "op": "delete"}])
    mutate(server, [{"entity": ent, "id": "r1", "op": "merge", "data": {"x": 1}}])
    last = mutate(server, [{"entity": ent, "id": "rm", "op": "set", "data": {"n": -1}}])
    sse = SseClient(server.url, q, ADMIN_TOKEN, **{"Last-Event-ID": seen})
    event, event_id, d = sse.next_event()
    assert (event, event_id, d["tx"]) == ("q-diff", str(last), last)
    assert d["removed"] == ["r0"]  # r3 refilled the window, then rm pushed it out
    assert [r["id"] for r in d["added"]] == ["rm"]
    assert [(u["id"], u["x"]) for u in d["updated"]] == [("r1", 1)]
    tx = mutate(server, [{"entity": ent, "id": "r1", "op": "merge", "data": {"x": 2}}])
    event, _, d = sse.next_event()  # and it is live again
    assert (event, d["tx"], d["updated"][0]["x"]) == ("q-diff", tx, 2)
    sse.close()
    # A Last-Event-ID from another database's future: a fresh q-init.
    sse = SseClient(server.url, q, ADMIN_TOKEN, **{"Last-Event-ID": "999999999"})
    assert sse.next_event()[0] == "q-init"
    sse.close()
