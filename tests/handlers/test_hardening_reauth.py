"""Re-sending `auth` on a WebSocket replaces the connection's principal everywhere:
live queries are re-checked and moved to the new permission context (a fresh q-init,
or an error for a query no longer allowed), mutations and presence are checked under
the new role and claims. On both backends, against tests/apps/reauth_app.py."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.handlers.accounts import granted, signup
from tests.serverproc import ADMIN_TOKEN, Api
from tests.wsclient import WsClient

APP = str(Path(__file__).parents[1] / "apps" / "reauth_app.py")


@pytest.fixture(scope="module")
def server(make_module_server, backend):
    return make_module_server(backend, APP=APP)


@pytest.fixture(scope="module")
def admin(server) -> Api:
    return Api(server.url, ADMIN_TOKEN)


def _ids(init: dict, entity: str) -> set[str]:
    return {row["id"] for row in init["data"][entity]}


async def _reauth(ws: WsClient, token: str) -> None:
    await ws.send({"type": "auth", "token": token})
    await ws.expect("auth-ok")


def test_demoted_user_loses_rows_writes_and_fields_on_an_open_socket(server, admin):
    anon = Api(server.url)
    user = granted(admin, signup(anon), role="editor", claims={"team": "red", "payroll": True})
    red = ["red-" + uuid.uuid4().hex[:8] for _ in range(2)]
    for row_id in red:
        assert admin.post("/api/data/teamdocs", json={"id": row_id, "team": "red"}).ok
    blue = "blue-" + uuid.uuid4().hex[:8]
    assert admin.post("/api/data/teamdocs", json={"id": blue, "team": "blue"}).ok
    staff = "st-" + uuid.uuid4().hex[:8]
    assert admin.post("/api/data/staff", json={"id": staff, "salary": 5}).ok
    notes = ["n-" + uuid.uuid4().hex[:8] for _ in range(2)]
    for note in notes:
        assert user.api.post("/api/data/notes", json={"id": note}).status_code == 201

    async def go() -> None:
        ws = await WsClient.connect(server.url, user.access)
        await ws.send({"type": "subscribe", "id": "docs", "query": {"teamdocs": {}}})
        assert _ids(await ws.expect("q-init", id="docs"), "teamdocs") == set(red)
        salary = {"staff": {"$where": {"salary": {"$gt": 0}}}}
        await ws.send({"type": "subscribe", "id": "pay", "query": salary})
        assert staff in _ids(await ws.expect("q-init", id="pay"), "staff")
        await ws.send({"type": "subscribe", "id": "plain", "query": {"staff": {}}})
        await ws.expect("q-init", id="plain")
        # As an editor the first note may be deleted.
        await ws.send(
            {
                "type": "mutate",
                "id": "m1",
                "ops": [{"entity": "notes", "id": notes[0], "op": "delete"}],
            }
        )
        await ws.expect("mutate-ok", id="m1")
        await ws.send({"type": "presence-enter", "room": "red-room", "data": {}})
        await ws.expect("presence-change", room="red-room")

        # The admin takes the claim and the role away; the user refreshes and re-auths.
        demoted = granted(admin, user, role="user", claims={})
        await _reauth(ws, demoted.access)
        assert _ids(await ws.expect("q-init", id="docs"), "teamdocs") == set()
        denied = await ws.expect("error", id="pay")
        assert denied["error"]["code"] == "PERMISSION_DENIED"
        assert "salary" in denied["error"]["message"]
        room = await ws.expect("error")
        assert (
            room["error"]["code"] == "PERMISSION_DENIED" and "red-room" in room["error"]["message"]
        )
        plain = await ws.expect("q-init", id="plain")  # re-read under the new context
        assert "salary" not in plain["data"]["staff"][0]

        # Later writes to the rows it no longer reads reach it no more.
        assert admin.patch(f"/api/data/teamdocs/{red[0]}", json={"n": 1}).ok
        assert admin.post("/api/data/teamdocs", json={"team": "red"}).ok
        assert admin.patch(f"/api/data/staff/{staff}", json={"salary": 6}).ok
        changed = await ws.expect("q-diff", id="plain")
        assert [r["id"] for r in changed["updated"]] == [staff]
        assert "salary" not in changed["updated"][0]
        # Mutations are checked under the new role.
        await ws.send(
            {
                "type": "mutate",
                "id": "m2",
                "ops": [{"entity": "notes", "id": notes[1], "op": "delete"}],
            }
        )
        refused = await ws.expect("mutate-error", id="m2")
        assert refused["error"]["code"] == "PERMISSION_DENIED"
        # The ended query is gone; the moved ones still answer.
        await ws.send({"type": "unsubscribe", "id": "pay"})
        assert (await ws.expect("error", id="pay"))["error"]["code"] == "NOT_FOUND"
        await ws.send({"type": "presence-enter", "room": "red-room", "data": {}})
        assert (await ws.expect("error"))["error"]["code"] == "PERMISSION_DENIED"
        rest = await ws.quiet(0.5)
        assert not [m for m in rest if m.get("id") in ("docs", "pay")], rest
        ws.close()

    asyncio.run(go())


def test_promoted_user_gains_rows_and_then_their_diffs(server, admin):
    anon = Api(server.url)
    user = signup(anon)
    team = "t" + uuid.uuid4().hex[:8]
    doc = admin.post("/api/data/teamdocs", json={"team": team}).json()["data"]["id"]

    async def go() -> None:
        ws = await WsClient.connect(server.url, user.access)
        await ws.send({"type": "subscribe", "id": "d", "query": {"teamdocs": {}}})
        assert _ids(await ws.expect("q-init", id="d"), "teamdocs") == set()
        # The same token again changes nothing: no new q-init.
        await _reauth(ws, user.access)
        assert not [m for m in await ws.quiet(0.3) if m.get("type") == "q-init"]
        joined = granted(admin, user, claims={"team": team})
        await _reauth(ws, joined.access)
        assert _ids(await ws.expect("q-init", id="d"), "teamdocs") == {doc}
        assert admin.patch(f"/api/data/teamdocs/{doc}", json={"n": 2}).ok
        diff = await ws.expect("q-diff", id="d")
        assert diff["updated"][0]["id"] == doc and diff["updated"][0]["n"] == 2
        ws.close()

    asyncio.run(go())


def test_a_token_of_another_user_is_refused(server):
    anon = Api(server.url)
    first, second = signup(anon), signup(anon)

    async def go() -> None:
        ws = await WsClient.connect(server.url, first.access)
        await ws.send({"type": "auth", "token": second.access})
        assert "user it began with" in (await ws.expect("auth-error"))["message"]
        assert (await ws.closed_with())[0] == 4001

    asyncio.run(go())
