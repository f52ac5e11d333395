"""App rules, one table for every channel: each rule kind is checked, allowed and
denied, on REST get/list, /api/query, /api/mutate, functions, WebSocket (q-init,
diffs, mutate), SSE, storage and presence, on both backends (tests/apps/rules_app.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import ujson

from tests.handlers.accounts import Account, granted, signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of
from tests.wsclient import SseClient, WsClient

APP = str(Path(__file__).parents[1] / "apps" / "rules_app.py")


@pytest.fixture(scope="module")
def server(make_module_server, backend):
    return make_module_server(backend, APP=APP)


@pytest.fixture(scope="module")
def admin(server) -> Api:
    return Api(server.url, ADMIN_TOKEN)


@pytest.fixture(scope="module")
def users(server, admin) -> dict[str, Account]:
    anon = Api(server.url)
    return {
        "alice": signup(anon),
        "bob": signup(anon),
        "editor": granted(admin, signup(anon), role="editor"),
        "red": granted(admin, signup(anon), claims={"team": "red"}),
        "blue": granted(admin, signup(anon), claims={"team": "blue"}),
    }


def new_id() -> str:
    return uuid.uuid4().hex[:12]


# -- read channels: each returns the rows (by id) a user sees, or raises Denied ------------


class Denied(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message = status, code, message


def _check(r) -> Any:
    if r.status_code >= 400:
        e = error_of(r)
        raise Denied(r.status_code, e["code"], e["message"])
    return r.json()


Setup = Callable[[], list[str]]
"""Creates the rows a read test looks for; returns their ids."""


def read_rest_list(server, user: Account, entity: str, q: dict, setup: Setup) -> dict:
    setup()
    params = {}
    if "$where" in q:
        params["where"] = ujson.dumps(q["$where"])
    if "$order" in q:
        params["order"] = ",".join(("-" if d == "desc" else "") + k for k, d in q["$order"].items())
    body = _check(user.api.get(f"/api/data/{entity}", params=params))
    assert body["total"] == len(body["data"])  # the rule is in the SQL: totals agree
    return {r["id"]: r for r in body["data"]}


def read_rest_get(server, user: Account, entity: str, q: dict, setup: Setup) -> dict:
    out = {}
    for id in setup():
        r = user.api.get(f"/api/data/{entity}/{id}")
        if r.status_code == 404:
            continue
        out[id] = _check(r)["data"]
    return out


def read_query(server, user: Account, entity: str, q: dict, setup: Setup) -> dict:
    setup()
    return {r["id"]: r for r in _check(user.api.post("/api/query", json={entity: q}))[entity]}


def read_fn_query(server, user: Account, entity: str, q: dict, setup: Setup) -> dict:
    setup()
    body = _check(user.api.post("/api/fn/query", json={"q": {entity: q}}))
    return {r["id"]: r for r in body["result"][entity]}


def read_fn_get(server, user: Account, entity: str, q: dict, setup: Setup) -> dict:
    out = {}
    for id in setup():
        row = _check(user.api.post("/api/fn/get", json={"entity": entity, "id": id}))["result"]
        if row is not None:
            out[id] = row
    return out


async def _ws(server, user: Account, entity: str, q: dict, setup: Setup, diffs: bool) -> dict:
    ws = await WsClient.connect(server.url, user.access)
    try:
        if not diffs:
            await asyncio.to_thread(setup)
        await ws.send({"type": "subscribe", "id": "s", "query": {entity: q}})
        while True:
            first = await _next(ws)
            if first["type"] == "error":
                e = first["error"]
                raise Denied(e["status"], e["code"], e["message"])
            if first["type"] == "q-init":
                break
        rows = {r["id"]: r for r in first["data"][entity]}
        if not diffs:
            return rows
        assert rows == {}
        ids = await asyncio.to_thread(setup)
        for m in await ws.quiet(1.0):
            if m.get("type") != "q-diff":
                continue
            for rid in m["removed"]:
                rows.pop(rid, None)
            for r in m["added"]:
                rows[r["id"]] = r
            for r in m["updated"]:
                rows[r["id"]] = {k: v for k, v in {**rows[r["id"]], **r}.items() if v is not None}
        assert set(rows) <= set(ids)
        return rows
    finally:
        ws.close()


async def _next(ws: WsClient) -> dict:
    if ws.inbox:
        return ws.inbox.pop(0)
    m = await ws._read(10)
    assert m is not None
    return m


def read_ws_init(server, user, entity, q, setup) -> dict:
    return asyncio.run(_ws(server, user, entity, q, setup, diffs=False))


def read_ws_diff(server, user, entity, q, setup) -> dict:
    return asyncio.run(_ws(server, user, entity, q, setup, diffs=True))


def read_sse(server, user: Account, entity: str, q: dict, setup: Setup) -> dict:
    setup()
    sse = SseClient(server.url, {entity: q}, user.access)
    try:
        if sse.response.status_code >= 400:
            return _check(sse.response)
        event, _, data = sse.next_event()
        assert event == "q-init"
        return {r["id"]: r for r in data["data"][entity]}
    finally:
        sse.close()


READERS = {
    "rest-list": read_rest_list,
    "rest-get": read_rest_get,
    "query": read_query,
    "fn-query": read_fn_query,
    "fn-get": read_fn_get,
    "ws-init": read_ws_init,
    "ws-diff": read_ws_diff,
    "sse": read_sse,
}
QUERYING = [k for k in READERS if k not in ("rest-get", "fn-get")]
"""The channels where a query can name a field."""


def _notes(admin: Api, owner: Account, entity: str, rows: list[dict]) -> Setup:
    """Rows written by the admin on behalf of `owner` (so any shape can be set up)."""

    def setup() -> list[str]:
        ids = []
        for data in rows:
            id = new_id()
            ops = [{"entity": entity, "id": id, "op": "set", "data": {**data, "userId": owner.id}}]
            assert admin.post("/api/mutate", json={"ops": ops}).status_code == 200
            ids.append(id)
        return ids

    return setup


# -- row read rules -----------------------------------------------------------------------

READ_CASES = [
    # (entity, rows by alice, reader, expected visible indexes)
    ("notes", [{"t": "private"}, {"t": "public", "public": True}], "alice", {0, 1}),
    ("notes", [{"t": "private"}, {"t": "public", "public": True}], "bob", {1}),
    ("teamdocs", [{"team": "red"}, {"team": "blue"}, {"t": "none"}], "red", {0}),
    ("teamdocs", [{"team": "red"}, {"team": "blue"}, {"t": "none"}], "blue", {1}),
    ("teamdocs", [{"team": "red"}, {"team": "blue"}, {"t": "none"}], "bob", set()),
]


@pytest.mark.parametrize("channel", list(READERS))
@pytest.mark.parametrize("case", range(len(READ_CASES)))
def test_read_rules(server, admin, users, channel, case):
    base, rows, reader, visible = READ_CASES[case]
    entity = base  # rows are told apart by a run marker
    marker = new_id()
    tagged = [{**r, "run": marker} for r in rows]
    ids: list[str] = []

    def setup() -> list[str]:
        ids[:] = _notes(admin, users["alice"], entity, tagged)()
        return ids

    seen = READERS[channel](server, users[reader], entity, {"$where": {"run": marker}}, setup)
    assert set(seen) == {ids[i] for i in visible}, channel


# -- field rules: stripped, and 403 when named ---------------------------------------------


@pytest.mark.parametrize("channel", list(READERS))
def test_unreadable_fields_are_stripped(server, admin, users, channel):
    for reader, secret in (("alice", True), ("bob", False)):
        marker = new_id()
        row = {"public": True, "secret": "s3", "internal": "i", "run": marker}
        setup = _notes(admin, users["alice"], "notes", [row])
        seen = READERS[channel](server, users[reader], "notes", {"$where": {"run": marker}}, setup)
        assert seen, (channel, reader)
        for r in seen.values():
            assert ("secret" in r) is secret, (channel, reader, r)
            assert "internal" not in r and r["run"] == marker


@pytest.mark.parametrize("channel", QUERYING)
@pytest.mark.parametrize(
    "q, field",
    [
        ({"$where": {"secret": "x"}}, "secret"),
        ({"$order": {"secret": "asc"}}, "secret"),
        ({"$fields": ["internal"]}, "internal"),
    ],
)
def test_naming_an_unreadable_field_is_403(server, users, channel, q, field):
    if channel == "rest-list" and "$fields" in q:
        pytest.skip("GET /api/data has no projection")
    with pytest.raises(Denied) as denied:
        READERS[channel](server, users["bob"], "notes", q, lambda: [])
    assert (denied.value.status, denied.value.code) == (403, "PERMISSION_DENIED")
    assert denied.value.message == f"You do not have read access to notes.{field}"


def test_the_admin_token_bypasses_rules(server, admin, users):
    marker = new_id()
    _notes(admin, users["alice"], "notes", [{"secret": "s", "internal": "i", "run": marker}])()
    rows = admin.post("/api/query", json={"notes": {"$where": {"internal": "i", "run": marker}}})
    assert rows.status_code == 200 and rows.json()["notes"][0]["secret"] == "s"


# -- write rules ---------------------------------------------------------------------------


def write_rest(server, user: Account, op: str, entity: str, id: str, data: dict | None) -> None:
    if op == "create":
        r = user.api.post(f"/api/data/{entity}", json={**(data or {}), "id": id})
    elif op == "merge":
        r = user.api.patch(f"/api/data/{entity}/{id}", json=data)
    else:
        r = user.api.delete(f"/api/data/{entity}/{id}")
    if r.status_code != 204:
        _check(r)


def _mutate_op(op: str, entity: str, id: str, data: dict | None) -> dict:
    out = {"op": "set" if op == "create" else op, "entity": entity, "id": id}
    if data is not None:
        out["data"] = data
    return out


def write_mutate(server, user, op, entity, id, data) -> None:
    _check(user.api.post("/api/mutate", json={"ops": [_mutate_op(op, entity, id, data)]}))


def write_fn(server, user, op, entity, id, data) -> None:
    body = {"op": op, "entity": entity, "id": id}
    if data is not None:
        body["data"] = data
    _check(user.api.post("/api/fn/write", json=body))


async def _ws_write(server, user, op, entity, id, data) -> None:
    ws = await WsClient.connect(server.url, user.access)
    try:
        await ws.send({"type": "mutate", "id": "m", "ops": [_mutate_op(op, entity, id, data)]})
        while True:
            m = await _next(ws)
            if m["type"] == "mutate-ok":
                return
            if m["type"] == "mutate-error":
                e = m["error"]
                raise Denied(e["status"], e["code"], e["message"])
    finally:
        ws.close()


def write_ws(server, user, op, entity, id, data) -> None:
    asyncio.run(_ws_write(server, user, op, entity, id, data))


WRITERS = {"rest": write_rest, "mutate": write_mutate, "fn": write_fn, "ws": write_ws}

WRITE_CASES = [
    # (who, op, stored row by alice or None, data, expected: None allowed | (status, text))
    ("alice", "create", None, {"t": "x"}, None),
    ("alice", "create", None, {"status": "archived"}, (403, "create access")),
    ("alice", "merge", {"t": "x"}, {"t": "y"}, None),
    ("alice", "merge", {"t": "x"}, {"status": "archived"}, (403, "update access")),  # after
    ("alice", "merge", {"status": "archived"}, {"t": "y"}, (403, "update access")),  # before
    ("bob", "merge", {"t": "x"}, {"t": "y"}, (404, "not found")),  # unreadable: not leaked
    ("bob", "merge", {"public": True}, {"t": "y"}, (403, "update access")),  # readable
    ("alice", "delete", {"t": "x"}, None, (403, "delete access")),  # role
    ("editor", "delete", {"t": "x"}, None, None),
    ("alice", "merge", {"t": "x"}, {"pinned": True}, (403, "write access to notes.pinned")),
    ("editor", "merge", {"t": "x"}, {"pinned": True}, None),
]


@pytest.mark.parametrize("channel", list(WRITERS))
@pytest.mark.parametrize("case", range(len(WRITE_CASES)))
def test_write_rules(server, admin, users, channel, case):
    who, op, stored, data, expected = WRITE_CASES[case]
    owner = users["editor"] if who == "editor" else users["alice"]
    id = new_id()
    if stored is not None:
        ops = [{"entity": "notes", "id": id, "op": "set", "data": {**stored, "userId": owner.id}}]
        assert admin.post("/api/mutate", json={"ops": ops}).status_code == 200
    before = admin.get(f"/api/data/notes/{id}").json().get("data")
    if expected is None:
        WRITERS[channel](server, users[who], op, "notes", id, data)
        after = admin.get(f"/api/data/notes/{id}").json().get("data")
        assert after is None if op == "delete" else after is not None
        return
    with pytest.raises(Denied) as denied:
        WRITERS[channel](server, users[who], op, "notes", id, data)
    assert denied.value.status == expected[0], denied.value
    assert expected[1] in denied.value.message
    if expected[0] == 403 and op != "create":
        assert denied.value.message.startswith("You do not have")
    assert admin.get(f"/api/data/notes/{id}").json().get("data") == before  # nothing written


def test_denied_message_names_operation_and_target(server, admin, users):
    id = new_id()
    ops = [{"entity": "notes", "id": id, "op": "set", "data": {"userId": users["alice"].id}}]
    admin.post("/api/mutate", json={"ops": ops})
    r = users["alice"].api.delete(f"/api/data/notes/{id}")
    assert r.status_code == 403
    assert error_of(r)["message"] == f"You do not have delete access to notes/{id}"


# -- storage rules -------------------------------------------------------------------------


def _upload(api: Api, path: str):
    return api.post(
        "/api/storage/upload",
        files={"file": ("f.txt", b"hello", "text/plain")},
        data={"path": path},
    )


def test_storage_rules(server, users):
    alice, bob = users["alice"].api, users["bob"].api
    p = new_id()
    assert _upload(alice, f"public/{p}").status_code == 201
    assert _upload(alice, f"private/{p}").status_code == 201
    assert _upload(alice, f"keep/{p}").status_code == 201
    denied = _upload(alice, f"readonly/{p}")
    assert denied.status_code == 403 and error_of(denied)["code"] == "PERMISSION_DENIED"
    # read: owner, or anything under public/
    assert bob.get(f"/api/storage/public/{p}").status_code == 200
    assert bob.get(f"/api/storage/private/{p}").status_code == 404
    assert alice.get(f"/api/storage/private/{p}").status_code == 200
    listed = {f["path"] for f in bob.get("/api/storage", params={"prefix": "p"}).json()["files"]}
    assert f"public/{p}" in listed and f"private/{p}" not in listed
    # write: owner only, even where readable
    assert _upload(bob, f"public/{p}").status_code == 403
    # delete: owner, except under keep/
    assert bob.delete(f"/api/storage/public/{p}").status_code == 403
    kept = alice.delete(f"/api/storage/keep/{p}")
    assert kept.status_code == 403 and "delete access" in error_of(kept)["message"]
    assert alice.delete(f"/api/storage/public/{p}").status_code == 204


# -- room rules ----------------------------------------------------------------------------


async def _enter(server, user: Account, room: str) -> dict:
    ws = await WsClient.connect(server.url, user.access)
    try:
        await ws.send({"type": "presence-enter", "room": room, "data": {"n": 1}})
        while True:
            m = await _next(ws)
            if m["type"] in ("presence-change", "error"):
                return m
    finally:
        ws.close()


@pytest.mark.parametrize(
    "room, allowed",
    [("public-lobby", True), ("private-lobby", False), ("SELF", True)],
)
def test_room_rules(server, users, room, allowed):
    bob = users["bob"]
    room = bob.id if room == "SELF" else room
    m = asyncio.run(_enter(server, bob, room))
    got = bob.api.get(f"/api/presence/{room}")
    if allowed:
        assert m["type"] == "presence-change" and got.status_code == 200
    else:
        assert m["type"] == "error" and m["error"]["code"] == "PERMISSION_DENIED"
        assert m["error"]["message"] == f"You do not have access to room {room}"
        assert got.status_code == 403
