"""The Python client's accounts and REST: sign-up/in/out, MFA, refresh on 401 and
before expiry, sessions, CRUD, queries and typed errors; on both backends."""

from __future__ import annotations

import asyncio
import time

import pyotp
import pytest
from actorbase_client import ActorbaseError, Client, FileTokenStorage, NetworkError

from tests.clients.conftest import PASSWORD, new_email, run, signed_up
from tests.serverproc import Api


def test_sign_up_in_out_and_sessions(server):
    async def scenario() -> None:
        email = new_email()
        seen: list = []
        async with Client(server.url) as ab:
            ab.auth.on_change(seen.append)
            created = await ab.auth.sign_up(email, PASSWORD)
            assert created["user"]["email"] == email
            assert (await ab.auth.me())["id"] == created["user"]["id"]
            await ab.auth.sign_out()
            assert ab.auth.user is None
            with pytest.raises(ActorbaseError) as refused:
                await ab.auth.me()
            assert (refused.value.code, refused.value.status) == ("UNAUTHENTICATED", 401)
            with pytest.raises(ActorbaseError) as wrong:
                await ab.auth.sign_in(email, "not the password")
            assert (wrong.value.code, wrong.value.status) == ("INVALID_CREDENTIALS", 401)
            signed = await ab.auth.sign_in(email, PASSWORD)
            assert signed["user"]["id"] == created["user"]["id"]
            async with Client(server.url) as other:
                await other.auth.sign_in(email, PASSWORD)
                sessions = await ab.auth.sessions()
                assert len(sessions) == 2
                others = [s for s in sessions if not s["current"]]
                await ab.auth.revoke_session(others[0]["id"])
                with pytest.raises(ActorbaseError) as revoked:
                    await other.auth.me()
                assert revoked.value.status == 401
                assert other.auth.user is None  # the refresh failed too: signed out
        ids = [u and u["id"] for u in seen]
        assert ids == [created["user"]["id"], None, created["user"]["id"]]

    run(scenario())


def test_mfa_sign_in_with_a_totp_code(server):
    async def scenario() -> None:
        email = new_email()
        async with Client(server.url) as ab:
            await ab.auth.sign_up(email, PASSWORD)
            api = Api(server.url, ab._http.tokens.access_token)
            secret = api.post("/api/auth/mfa/enroll", json={"password": PASSWORD}).json()["secret"]
            code = pyotp.TOTP(secret).now()
            enabled = api.post("/api/auth/mfa/enable", json={"code": code, "password": PASSWORD})
            assert enabled.status_code == 200, enabled.text
        async with Client(server.url) as ab:
            step = await ab.auth.sign_in(email, PASSWORD)
            assert step["mfaRequired"] is True and ab.auth.user is None
            with pytest.raises(ActorbaseError) as bad:
                await ab.auth.verify_mfa(step["challenge"], "000000")
            assert bad.value.code == "INVALID_CREDENTIALS"
            # enabling spent the current step; the next one is within the drift allowance
            next_code = pyotp.TOTP(secret).at(time.time() + 30)
            done = await ab.auth.verify_mfa(step["challenge"], next_code)
            assert done["user"]["email"] == email
            assert (await ab.auth.me())["mfaEnabled"] is True

    run(scenario())


def test_a_refused_access_token_is_refreshed_once_and_the_call_retried(server, tmp_path):
    async def scenario() -> None:
        storage = FileTokenStorage(tmp_path / "tokens.json")
        async with Client(server.url, token_storage=storage) as ab:
            user_id = await signed_up(ab)
            first = ab._http.tokens
            # The server refuses this access token (not one it signed), as it would an
            # expired one; the refresh token is still good.
            await ab._http.set_tokens(type(first)("not-a-valid-token", first.refresh_token))
            rows = await asyncio_gather_lists(ab)
            assert all(r == {"data": [], "total": 0, "hasMore": False} for r in rows)
            renewed = ab._http.tokens
            assert renewed.refresh_token != first.refresh_token
            # One refresh for the five concurrent calls: a second would have presented
            # the rotated refresh token and ended the session.
            assert (await ab.auth.me())["id"] == user_id
        # The tokens were stored: a new client (a new run) is signed in at start.
        async with Client(server.url, token_storage=storage) as again:
            assert again.auth.user is not None and again.auth.user["id"] == user_id

    run(scenario())


async def asyncio_gather_lists(ab: Client) -> list:
    return list(await asyncio.gather(*(ab.data("notes_py").list() for _ in range(5))))


def test_crud_query_and_typed_errors(server):
    async def scenario() -> None:
        async with Client(server.url) as ab:
            await signed_up(ab)
            todos = ab.data("todos_py")
            created = await todos.create({"title": "Buy milk", "done": False, "n": 1})
            row = created["data"]
            assert isinstance(created["tx"], int)
            assert (await todos.get(row["id"]))["title"] == "Buy milk"
            updated = await todos.update(row["id"], {"done": True, "n": None})
            assert updated["data"]["done"] is True and "n" not in updated["data"]
            await todos.create({"title": "Walk", "done": False})
            listed = await todos.list(where={"done": False}, order="-createdAt", limit=10)
            assert [r["title"] for r in listed["data"]] == ["Walk"]
            q = await ab.query({"todos_py": {"$order": {"title": "asc"}}})
            assert [r["title"] for r in q["todos_py"]] == ["Buy milk", "Walk"]
            assert isinstance(q["tx"], int)
            await todos.remove(row["id"])
            with pytest.raises(ActorbaseError) as missing:
                await todos.get(row["id"])
            assert (missing.value.code, missing.value.status) == ("NOT_FOUND", 404)
            with pytest.raises(ActorbaseError) as bad:
                await ab.query({"todos_py": {"$where": {"n": {"$gt": []}}}})
            assert (bad.value.code, bad.value.status) == ("INVALID_ARGUMENT", 400)
            with pytest.raises(ActorbaseError) as forbidden:
                await ab.mutate([{"entity": "users", "id": "x", "op": "set", "data": {}}])
            assert (forbidden.value.code, forbidden.value.status) == ("PERMISSION_DENIED", 403)
            assert ab.outbox.pending == 0  # refused: not kept for a retry
        async with Client("http://127.0.0.1:9") as nowhere:
            with pytest.raises(NetworkError) as down:
                await nowhere.auth.sign_in(new_email(), PASSWORD)
            assert down.value.status == 0 and down.value.transient

    run(scenario())


def test_functions_call_answers_errors_in_the_seed_format(server):
    async def scenario() -> None:
        async with Client(server.url) as ab:
            await signed_up(ab)
            with pytest.raises(ActorbaseError) as missing:
                await ab.functions.call("noSuchFunction", {})
            assert missing.value.status == 404 and missing.value.code == "NOT_FOUND"

    run(scenario())
