"""The Python client's outbox: writes made while the server is down wait in an SQLite
file (across a client restart too) and land exactly once, in order, when it is back;
a retry after a lost acknowledgement is applied once. Both backends."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from actorbase_client import Client, FileTokenStorage, SQLiteOutbox

from tests.clients.conftest import PASSWORD, eventually, new_email, run, signed_up
from tests.conftest import BACKENDS


def _commits_touching(server, row_id: str) -> int:
    rows = server.sql(
        "SELECT COUNT(*) FROM ab_tx WHERE CAST(changes AS TEXT) LIKE ?", (f"%{row_id}%",)
    )
    return int(rows[0][0])


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_offline_writes_land_once_in_order_after_a_restart(make_server, tmp_path, backend_name):
    server = make_server(backend_name)
    u = uuid.uuid4().hex[:8] + "-"
    query = {"notes": {"$order": {"n": "asc"}}}
    ops = [
        [{"entity": "notes", "id": f"{u}a", "op": "set", "data": {"n": 1, "v": 1}}],
        [{"entity": "notes", "id": f"{u}b", "op": "set", "data": {"n": 2}}],
        [{"entity": "notes", "id": f"{u}a", "op": "merge", "data": {"v": 2}}],
        [{"entity": "notes", "id": f"{u}b", "op": "delete"}],
        [{"entity": "notes", "id": f"{u}a", "op": "merge", "data": {"v": 3}}],
        [{"entity": "notes", "id": f"{u}c", "op": "set", "data": {"n": 3}}],
    ]
    outbox, tokens = tmp_path / "outbox.db", FileTokenStorage(tmp_path / "tokens.json")
    options = {"token_storage": tokens, "reconnect_base": 0.05, "reconnect_max": 0.5}

    async def scenario() -> None:
        async with Client(server.url, outbox=SQLiteOutbox(outbox), **options) as ab:
            await signed_up(ab)
            live = ab.live(query)
            await live.ready()
            await asyncio.to_thread(server.stop)
            writes = [asyncio.ensure_future(ab.mutate(batch)) for batch in ops]
            await eventually(lambda: ab.outbox.pending == len(ops), what="queued")
            # Shown at once, in order: a deleted, b merged twice.
            rows = live.result["notes"]
            assert [(r["id"], r.get("v")) for r in rows] == [(f"{u}a", 3), (f"{u}c", None)]
            await asyncio.sleep(0.3)  # a few failed attempts to send
            assert not any(w.done() for w in writes)
        # The process "ended" offline; a new run finds the writes in the file.
        async with Client(server.url, outbox=outbox, **options) as ab:
            assert ab.outbox.pending == len(ops)
            counts: list[int] = []
            ab.outbox.on_change(counts.append)
            live = ab.live(query)
            await asyncio.to_thread(server.start)
            await eventually(lambda: ab.outbox.pending == 0, within=30, what="sent")
            assert counts == list(range(len(ops) - 1, -1, -1))  # one at a time, in order
            expected = (await ab.query(query))["notes"]
            assert [(r["id"], r.get("v")) for r in expected] == [(f"{u}a", 3), (f"{u}c", None)]
            await eventually(lambda: live.result and live.result["notes"] == expected, what="live")
        for row_id, commits in ((f"{u}a", 3), (f"{u}b", 2), (f"{u}c", 1)):
            assert _commits_touching(server, row_id) == commits  # each write once

    run(scenario())


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_retry_after_a_lost_acknowledgement_applies_once(make_server, gate_factory, backend_name):
    server = make_server(backend_name)
    u = uuid.uuid4().hex[:8] + "-"

    async def scenario() -> None:
        gate = await gate_factory(server.port)
        async with Client(gate.url, reconnect_base=0.05, reconnect_max=0.5) as ab:
            await signed_up(ab)
            gate.swallow_next(b"POST /api/mutate")
            op = {"entity": "notes", "id": f"{u}x", "op": "set", "data": {"n": 1}}
            outcome = await ab.mutate([op], id=f"{u}key")
            assert gate.swallowed == 1  # the first answer was lost on the way back
            assert outcome["replayed"] is True
            assert outcome["results"] == [{"op": "set", "id": f"{u}x", "status": "created"}]
            row = await ab.data("notes").get(f"{u}x")
            assert row["n"] == 1
        await gate.stop()
        assert _commits_touching(server, f"{u}x") == 1

    run(scenario())


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_queued_write_waits_for_its_own_user(make_server, gate_factory, backend_name):
    server = make_server(backend_name)
    u = uuid.uuid4().hex[:8] + "-"

    async def scenario() -> None:
        gate = await gate_factory(server.port)
        # Long backoffs: the sender retries only when kicked (sign-out, sign-in, flush),
        # so no attempt with the first user's token is still in flight at the switch.
        async with Client(gate.url, reconnect_base=5, reconnect_max=5) as ab:
            email_a = new_email()
            await ab.auth.sign_up(email_a, PASSWORD)
            user_a = ab.auth.user["id"]
            gate.cut()
            op = {"entity": "notes", "id": f"{u}a", "op": "set", "data": {"n": 1}}
            write = asyncio.ensure_future(ab.mutate([op]))
            await eventually(lambda: ab.outbox.pending == 1, what="queued")
            assert await ab.outbox.flush() == 1  # tried and failed: offline
            await ab.auth.sign_out()  # offline: the tokens go, the session ends later
            # An attempt the sign-out's kick started with the first user's token fails
            # here, before the relay opens, rather than reach the server after it.
            assert await ab.outbox.flush() == 1
            gate.open()
            await signed_up(ab)  # someone else on this device
            assert await ab.outbox.flush() == 1 and not write.done()  # not sent as them
            await ab.auth.sign_in(email_a, PASSWORD)
            outcome = await asyncio.wait_for(write, 20)
            assert outcome["results"][0]["status"] == "created"
            assert (await ab.data("notes").get(f"{u}a"))["userId"] == user_a
        await gate.stop()

    run(scenario())
