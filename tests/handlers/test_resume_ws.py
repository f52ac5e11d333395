"""Resuming live queries (issue 16): WebSocket `subscribe` with `since`, SSE with
`?since=`, and the presence id in `auth-ok`, against the real server on both backends."""

from __future__ import annotations

import asyncio
import uuid

import requests
import ujson

from tests.handlers.accounts import signin, signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of
from tests.wsclient import SseClient, WsClient


def run(coro):
    return asyncio.run(coro)


def entity() -> str:
    return "r" + uuid.uuid4().hex[:10]


def put(ent: str, id: str, **data) -> dict:
    return {"entity": ent, "id": id, "op": "set", "data": data}


def mutate(server, *ops: dict, token: str = ADMIN_TOKEN) -> int:
    r = Api(server.url, token).post("/api/mutate", json={"ops": list(ops)})
    assert r.status_code == 200, r.text
    return r.json()["tx"]


def current_tx(server) -> int:
    r = Api(server.url, ADMIN_TOKEN).post("/api/query", json={"nothing": {}})
    assert r.status_code == 200, r.text
    return r.json()["tx"]


def frames_of(messages: list[dict], sub_id: str) -> list[dict]:
    return [m for m in messages if m.get("id") == sub_id]


def test_subscribe_since_replays_exactly_what_changed_while_away(server):
    """One q-diff at the last tx: rows added, updated, deleted, and rows that no longer
    (or newly) match the $where; then the subscription is live."""
    ent = entity()
    mutate(
        server,
        put(ent, "keep", n=1, done=False),
        put(ent, "edit", n=2, done=False),
        put(ent, "gone", n=3, done=False),
        put(ent, "finish", n=4, done=False),
        put(ent, "later", n=5, done=True),
    )
    q = {ent: {"$where": {"done": False}, "$order": {"n": "asc"}}}

    async def go():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        await c.send({"type": "subscribe", "id": "s1", "query": q})
        init = await c.expect("q-init", id="s1")
        assert [r["id"] for r in init["data"][ent]] == ["keep", "edit", "gone", "finish"]
        seen = init["tx"]
        c.close()
        # While away: an update, a delete, one row stops matching, one starts, one is new.
        mutate(server, {"entity": ent, "id": "edit", "op": "merge", "data": {"title": "x"}})
        mutate(server, {"entity": ent, "id": "gone", "op": "delete"})
        mutate(server, {"entity": ent, "id": "finish", "op": "merge", "data": {"done": True}})
        mutate(server, {"entity": ent, "id": "later", "op": "merge", "data": {"done": False}})
        last = mutate(server, put(ent, "new", n=0, done=False))
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        await c.send({"type": "subscribe", "id": "s1", "query": q, "since": seen})
        d = await c.expect("q-diff", id="s1")
        assert d["tx"] == last
        assert sorted(d["removed"]) == ["finish", "gone"]
        assert sorted(r["id"] for r in d["added"]) == ["later", "new"]
        assert [(u["id"], u["title"]) for u in d["updated"]] == [("edit", "x")]
        assert frames_of(await c.quiet(), "s1") == []  # no q-init, nothing twice
        tx = mutate(server, {"entity": ent, "id": "keep", "op": "merge", "data": {"v": 1}})
        d = await c.expect("q-diff", id="s1")  # and live again
        assert d["tx"] == tx and d["updated"] == [{"id": "keep", "v": 1, **_stamp(d)}]
        c.close()

    run(go())


def _stamp(d: dict) -> dict:
    """The updatedAt a merge also changes, as the diff carries it."""
    return {"updatedAt": d["updated"][0]["updatedAt"]}


def test_since_current_gets_an_empty_diff(server):
    ent, other = entity(), entity()
    mutate(server, put(ent, "a", n=1))

    async def go():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        await c.send({"type": "subscribe", "id": "s", "query": {ent: {}}})
        seen = (await c.expect("q-init", id="s"))["tx"]
        # Commits elsewhere move the tx but not this result: still an empty diff.
        now = mutate(server, put(other, "x", n=1))
        for since in (seen, now):
            await c.send(
                {"type": "subscribe", "id": f"e{since}", "query": {ent: {}}, "since": since}
            )
            d = await c.expect("q-diff", id=f"e{since}")
            assert d == {
                "type": "q-diff",
                "id": f"e{since}",
                "added": [],
                "updated": [],
                "removed": [],
                "tx": now,
            }
        # Several entities: the empty diff names the first.
        q = {ent: {}, other: {}}
        await c.send({"type": "subscribe", "id": "m", "query": q, "since": now})
        d = await c.expect("q-diff", id="m")
        assert (d["entity"], d["added"], d["updated"], d["removed"]) == (ent, [], [], [])
        assert frames_of(await c.quiet(), "m") == []
        c.close()

    run(go())


def test_bad_since_is_refused_for_that_subscription(server):
    ent = entity()
    mutate(server, put(ent, "a", n=1))

    async def go():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        now = current_tx(server)
        for bad in (-1, "5", 1.5, True, [3], now + 1000):
            await c.send({"type": "subscribe", "id": "b", "query": {ent: {}}, "since": bad})
            err = await c.expect("error", id="b")
            assert err["error"]["code"] == "INVALID_ARGUMENT" and err["error"]["status"] == 400
            assert "since" in err["error"]["message"]
        # Nothing was left open under that id; null is no resume: a fresh q-init.
        await c.send({"type": "subscribe", "id": "b", "query": {ent: {}}, "since": None})
        init = await c.expect("q-init", id="b")
        assert [r["id"] for r in init["data"][ent]] == ["a"]
        c.close()

    run(go())


def test_since_the_log_no_longer_holds_gets_a_fresh_init(server):
    """A gap the tx log no longer holds whole (here a commit of it deleted, as pruning
    would) is not replayed: the client gets the result afresh."""
    ent = entity()
    mutate(server, put(ent, "a", n=1), put(ent, "b", n=2))

    async def go():
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        await c.send({"type": "subscribe", "id": "s", "query": {ent: {}}})
        seen = (await c.expect("q-init", id="s"))["tx"]
        c.close()
        gone = mutate(server, {"entity": ent, "id": "a", "op": "delete"})
        last = mutate(server, put(ent, "c", n=3))
        await asyncio.to_thread(server.sql, "DELETE FROM ab_tx WHERE tx = ?", (gone,))
        c = await WsClient.connect(server.url, ADMIN_TOKEN)
        await c.send({"type": "subscribe", "id": "s", "query": {ent: {}}, "since": seen})
        init = await c.expect("q-init", id="s")
        assert init["tx"] == last and sorted(r["id"] for r in init["data"][ent]) == ["b", "c"]
        assert frames_of(await c.quiet(), "s") == []
        c.close()

    run(go())


def test_since_on_a_query_with_links_gets_a_fresh_init(server, anon):
    """Only flat queries are replayed from the tx log; others start afresh."""
    user = signup(anon)
    ent = entity()
    mutate(server, put(ent, "a", n=1), token=user.access)

    async def go():
        c = await WsClient.connect(server.url, user.access)
        q = {ent: {"user": {}}}
        await c.send({"type": "subscribe", "id": "l", "query": q, "since": current_tx(server)})
        init = await c.expect("q-init", id="l")
        assert [r["id"] for r in init["data"][ent]] == ["a"]
        c.close()

    run(go())


def test_auth_ok_carries_the_id_presence_lists(server, anon):
    user = signup(anon)
    room = "room-" + uuid.uuid4().hex[:8]

    async def go():
        c = await WsClient.connect(server.url)
        await c.send({"type": "auth", "token": user.access})
        ok = await c.expect("auth-ok")
        conn_id = ok["connectionId"]
        assert ok["userId"] == user.id and isinstance(conn_id, str) and conn_id
        await c.send({"type": "presence-enter", "room": room, "data": {"name": "me"}})
        snapshot = await c.expect("presence-change", room=room)
        assert [(p["id"], p["userId"]) for p in snapshot["peers"]] == [(conn_id, user.id)]
        r = await asyncio.to_thread(Api(server.url, user.access).get, f"/api/presence/{room}")
        assert [p["id"] for p in r.json()["peers"]] == [conn_id]
        # A re-auth keeps the socket, so the same id; another socket gets another.
        await c.send({"type": "auth", "token": user.access})
        assert (await c.expect("auth-ok"))["connectionId"] == conn_id
        other = await WsClient.connect(server.url)
        await other.send({"type": "auth", "token": user.access})
        assert (await other.expect("auth-ok"))["connectionId"] not in ("", conn_id)
        c.close()
        other.close()

    run(go())


class SinceSse(SseClient):
    """An EventSource reopened with a fresh token in its URL and `?since=`."""

    def __init__(self, base: str, query, token: str, since: str, **headers: str) -> None:
        params = {"q": ujson.dumps(query), "token": token, "since": since}
        self.response = requests.get(
            base + "/api/subscribe",
            params=params,
            headers={"Accept": "text/event-stream", **headers},
            stream=True,
            timeout=15,
        )
        self._lines = self.response.iter_lines(decode_unicode=True)
        self.comments = []


def test_sse_resumes_from_since_in_the_url(server, anon):
    user = signup(anon)
    ent = entity()
    mutate(server, put(ent, "a", n=1), put(ent, "b", n=2), token=user.access)
    q = {ent: {"$order": {"n": "asc"}}}
    sse = SseClient(server.url, q, user.access)
    _, seen, init = sse.next_event()
    assert [r["id"] for r in init["data"][ent]] == ["a", "b"]
    sse.close()
    mutate(server, {"entity": ent, "id": "a", "op": "delete"}, token=user.access)
    last = mutate(server, put(ent, "c", n=3), token=user.access)
    # A fresh token (a new sign-in stands for a refresh) and the last tx seen.
    fresh = signin(anon, user.email)["accessToken"]
    sse = SinceSse(server.url, q, fresh, seen)
    assert sse.response.status_code == 200
    event, event_id, d = sse.next_event()
    assert (event, event_id, d["tx"]) == ("q-diff", str(last), last)
    assert d["removed"] == ["a"] and [r["id"] for r in d["added"]] == ["c"]
    assert d["updated"] == []
    sse.close()
    # Nothing changed since: an empty q-diff, whose id line tells EventSource the tx.
    sse = SinceSse(server.url, q, user.access, str(last))
    event, event_id, d = sse.next_event()
    assert (event, event_id) == ("q-diff", str(last))
    assert (d["added"], d["updated"], d["removed"]) == ([], [], [])
    sse.close()
    # The browser's own Last-Event-ID (newer) wins over the URL's since.
    sse = SinceSse(server.url, q, user.access, seen, **{"Last-Event-ID": str(last)})
    event, _, d = sse.next_event()
    assert (event, d["added"], d["removed"]) == ("q-diff", [], [])
    sse.close()


def test_sse_bad_since_is_a_400(server, anon):
    user = signup(anon)
    q = {entity(): {}}
    for bad in ("-1", "abc", "1.5", "", str(current_tx(server) + 1000)):
        sse = SinceSse(server.url, q, user.access, bad)
        try:
            assert sse.response.status_code == 400, bad
            error = error_of(sse.response)
            assert error["code"] == "INVALID_ARGUMENT" and "since" in error["message"]
        finally:
            sse.close()
