"""Gets by id sent together (batched into one statement per entity by the server)
answer each caller as a lone get would: its own row, 404 for a missing id or another
user's row beside found ones, fields stripped per caller. Over real HTTP on both
backends."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid

from tests.handlers.accounts import signup
from tests.serverproc import Api, error_of


def _burst(base: str, requests_: list[tuple[str | None, str]]) -> list[tuple[int, dict]]:
    """Every (token, path) sent at once, each on its own connection, released together
    so they reach the server in the same moment."""
    apis = [Api(base, token) for token, _ in requests_]
    for api in apis:  # connect first, so the gets themselves arrive together
        api.get("/api/admin/health")
    gate = threading.Barrier(len(requests_))

    def one(i: int) -> tuple[int, dict]:
        gate.wait()
        response = apis[i].get(requests_[i][1])
        return response.status_code, response.json()

    with concurrent.futures.ThreadPoolExecutor(len(requests_)) as pool:
        return list(pool.map(one, range(len(requests_))))


def test_a_burst_of_gets_answers_each_caller_alone(anon, server):
    alice, bob = signup(anon), signup(anon)
    entity = "rb_" + uuid.uuid4().hex[:10]
    mine = [alice.api.post(f"/api/data/{entity}", json={"n": n}).json()["data"] for n in range(12)]
    theirs = bob.api.post(f"/api/data/{entity}", json={"n": 99}).json()["data"]
    sent: list[tuple[str | None, str]] = []
    expected: list[tuple[int, object]] = []
    for row in mine:
        sent.append((alice.access, f"/api/data/{entity}/{row['id']}"))
        expected.append((200, row))
    for i in range(4):
        sent.append((alice.access, f"/api/data/{entity}/missing-{i}"))
        expected.append((404, "NOT_FOUND"))
    sent.append((alice.access, f"/api/data/{entity}/{theirs['id']}"))
    expected.append((404, "NOT_FOUND"))
    sent.append((bob.access, f"/api/data/{entity}/{theirs['id']}"))
    expected.append((200, theirs))
    sent.append((bob.access, f"/api/data/{entity}/{mine[0]['id']}"))
    expected.append((404, "NOT_FOUND"))
    sent.append((alice.access, f"/api/data/{entity}/{mine[3]['id']}"))  # the same id twice
    expected.append((200, mine[3]))
    sent.append((alice.access, f"/api/data/users/{alice.id}"))
    expected.append((200, {"id": alice.id, "email": alice.email}))
    sent.append((alice.access, f"/api/data/users/{bob.id}"))
    expected.append((200, {"id": bob.id}))
    sent.append((None, f"/api/data/{entity}/{mine[1]['id']}"))
    expected.append((401, "UNAUTHENTICATED"))

    for round_ in range(3):  # a few bursts: the batches form differently each time
        answers = _burst(server.url, sent)
        for (status, body), (want_status, want), (_, path) in zip(
            answers, expected, sent, strict=True
        ):
            assert status == want_status, (round_, path, body)
            if isinstance(want, str):
                assert body["error"]["code"] == want, (path, body)
            elif "/users/" in path:
                got = body["data"]
                assert got["id"] == want["id"]
                assert got.get("email") == want.get("email"), got
            else:
                assert body["data"] == want, path


def test_a_lone_get_still_answers(anon):
    alice = signup(anon)
    entity = "rb_" + uuid.uuid4().hex[:10]
    row = alice.api.post(f"/api/data/{entity}", json={"title": "t"}).json()["data"]
    assert alice.api.get(f"/api/data/{entity}/{row['id']}").json()["data"] == row
    assert error_of(alice.api.get(f"/api/data/{entity}/nope"))["code"] == "NOT_FOUND"
