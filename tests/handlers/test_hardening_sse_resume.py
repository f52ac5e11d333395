"""SSE `Last-Event-ID` resume reads the tx log in pages (issue 12), on both backends."""

from __future__ import annotations

import uuid

import requests

from actors.subscription import RESUME_PAGE
from tests.serverproc import ADMIN_TOKEN
from tests.wsclient import SseClient


def test_resume_over_more_than_one_page_of_the_tx_log(server):
    """A gap of more than RESUME_PAGE txs is still replayed as one q-diff, with each
    row's state before the gap taken from the first page that touched it."""
    ent, other = "s" + uuid.uuid4().hex[:10], "o" + uuid.uuid4().hex[:10]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"

    def mutate(*ops: dict) -> int:
        r = session.post(server.url + "/api/mutate", json={"ops": list(ops)}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["tx"]

    def put(e: str, id: str, **data) -> dict:
        return {"entity": e, "id": id, "op": "set", "data": data}

    mutate(put(ent, "a", n=1, v=0), put(ent, "c", n=3, v=0), put(ent, "d", n=4, v=0))
    q = {ent: {"$order": {"n": "asc"}}}
    sse = SseClient(server.url, q, ADMIN_TOKEN)
    _, seen, init = sse.next_event()
    assert [r["id"] for r in init["data"][ent]] == ["a", "c", "d"]
    sse.close()
    # While disconnected, over more than two pages: a changes in the first and again in
    # the last; b enters and leaves in the middle; c leaves; e enters; d ends as it was.
    mutate(put(ent, "a", n=1, v=1))
    mutate(put(ent, "d", n=4, v=9))
    mutate(put(ent, "b", n=2, v=0))
    for i in range(RESUME_PAGE + 100):  # other entities' txs fill the pages
        mutate(put(other, f"x{i % 7}", i=i))
    mutate({"entity": ent, "id": "b", "op": "delete"})
    mutate({"entity": ent, "id": "c", "op": "delete"})
    for i in range(RESUME_PAGE):
        mutate(put(other, f"y{i % 7}", i=i))
    mutate(put(ent, "d", n=4, v=0))
    mutate(put(ent, "e", n=5, v=0))
    last = mutate(put(ent, "a", n=1, v=2))
    assert last - int(seen) > 2 * RESUME_PAGE
    sse = SseClient(server.url, q, ADMIN_TOKEN, **{"Last-Event-ID": seen})
    try:
        event, event_id, d = sse.next_event()
        assert (event, event_id, d["tx"]) == ("q-diff", str(last), last)
        assert d["removed"] == ["c"]
        assert [r["id"] for r in d["added"]] == ["e"]
        changed = {u["id"]: {k: v for k, v in u.items() if k != "updatedAt"} for u in d["updated"]}
        assert changed == {"a": {"id": "a", "v": 2}, "d": {"id": "d"}}  # d: its updatedAt only
        tx = mutate(put(ent, "a", n=1, v=3))
        event, _, d = sse.next_event()  # and it is live again
        assert (event, d["tx"], d["updated"][0]["v"]) == ("q-diff", tx, 3)
    finally:
        sse.close()
