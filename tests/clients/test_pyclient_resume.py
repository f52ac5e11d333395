"""The Python client's live queries across a server restart and a token expiry: the
resubscription resumes from the last tx (one q-diff, no rows lost or repeated), and a
token refreshed before expiry re-authenticates the open socket (and an SSE stream
resumes after the server ends it). Each test has its own server, on both backends."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from actorbase_client import Client

from tests.clients.conftest import PASSWORD, eventually, new_email, run
from tests.conftest import BACKENDS


def _set(u: str, n: int) -> dict:
    return {"entity": "notes", "id": f"{u}{n}", "op": "set", "data": {"n": n}}


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_restart_resumes_with_one_diff_and_no_row_lost_or_repeated(
    make_server, gate_factory, backend_name
):
    server = make_server(backend_name)
    query = {"notes": {"$order": {"n": "asc"}}}
    u = uuid.uuid4().hex[:8] + "-"

    async def scenario() -> None:
        gate = await gate_factory(server.port)
        email = new_email()
        async with Client(gate.url, reconnect_base=0.05, reconnect_max=0.5) as ab:
            await ab.auth.sign_up(email, PASSWORD)
            await ab.mutate([_set(u, n) for n in range(5)])
            live = ab.live(query)
            await live.ready()
            assert len(live.result["notes"]) == 5
            states: list[str] = []
            ab.connection.on_change(states.append)
            inits, diffs = live.stats.inits, live.stats.diffs
            connection_before = ab.connection.connection_id

            gate.cut()  # held off until the changes below are made
            await eventually(lambda: ab.connection.state == "offline", what="offline")
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            async with Client(server.url) as other:  # the same user, not through the gate
                await other.auth.sign_in(email, PASSWORD)
                await other.mutate(
                    [
                        _set(u, 7),
                        _set(u, 8),
                        {"entity": "notes", "id": f"{u}1", "op": "merge", "data": {"x": 1}},
                        {"entity": "notes", "id": f"{u}2", "op": "delete"},
                    ]
                )
                expected = (await other.query(query))["notes"]
            gate.open()
            await eventually(lambda: live.stats.diffs > diffs, within=30, what="resume")
            assert (live.stats.inits, live.stats.diffs) == (inits, diffs + 1)
            assert live.result["notes"] == expected
            ids = [r["id"] for r in live.result["notes"]]
            assert len(ids) == len(set(ids)) == 6
            assert "offline" in states and states[-1] == "open"
            assert ab.connection.connection_id != connection_before  # a new socket
        await gate.stop()

    run(scenario())


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_token_expiry_reauths_the_socket_and_resumes_sse(make_server, backend_name):
    server = make_server(backend_name, ACCESS_TOKEN_TTL=30)
    query = {"notes": {"$order": {"n": "asc"}}}
    u = uuid.uuid4().hex[:8] + "-"

    async def scenario() -> None:
        email = new_email()
        async with (
            Client(server.url) as ab,
            Client(server.url, transport="sse") as sse,
        ):
            await ab.auth.sign_up(email, PASSWORD)
            await sse.auth.sign_in(email, PASSWORD)
            live, streamed = ab.live(query), sse.live(query)
            await live.ready()
            await streamed.ready()
            first = ab._http.claims
            first_sse = sse._http.claims
            # Past both first tokens' expiry (the server closes a socket whose token
            # expired without a fresh auth, and ends an SSE stream).
            await eventually(
                lambda: time.time() > max(first.expires_at, first_sse.expires_at) + 2,
                within=60,
                what="expiry",
            )
            await ab.mutate([_set(u, 1)])
            # The socket's result shows the optimistic row at once; the server's row
            # (with updatedAt) replaces it when the q-diff arrives, maybe after mutate-ok.
            await eventually(lambda: len(streamed.result["notes"]) == 1, what="sse diff")
            await eventually(lambda: live.result == streamed.result, what="ws diff")
            assert ab.connection.stats.connects == 1  # the same socket all along
            assert ab.connection.stats.reauths >= 1
            assert ab._http.claims.expires_at > first.expires_at
            assert (live.stats.inits, streamed.stats.inits) == (1, 1)  # nothing started over

    run(scenario(), timeout=110)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_pings_are_answered_and_signing_out_parks_the_socket(make_server, backend_name):
    # The server closes a socket that misses a pong within one interval (4002).
    server = make_server(backend_name, WS_PING_INTERVAL=0.2)
    query = {"notes": {"$order": {"n": "asc"}}}
    u = uuid.uuid4().hex[:8] + "-"

    async def scenario() -> None:
        email = new_email()
        async with Client(server.url, reconnect_base=0.05, reconnect_max=0.5) as ab:
            await ab.auth.sign_up(email, PASSWORD)
            live = ab.live(query)
            await live.ready()
            await asyncio.sleep(1.5)  # several ping intervals
            assert ab.connection.stats.connects == 1 and ab.connection.state == "open"
            await ab.auth.sign_out()
            await eventually(lambda: ab.connection.state == "offline", what="parked")
            await ab.auth.sign_in(email, PASSWORD)
            await eventually(lambda: ab.connection.state == "open", what="back")
            await ab.mutate([_set(u, 1)])
            await eventually(lambda: len(live.result["notes"]) == 1, what="diff")
            assert ab.connection.stats.connects == 2 and live.stats.inits == 1

    run(scenario())


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_silent_socket_is_replaced_and_resumed(make_server, gate_factory, backend_name):
    server = make_server(backend_name, WS_PING_INTERVAL=0.2)
    query = {"notes": {"$order": {"n": "asc"}}}
    u = uuid.uuid4().hex[:8] + "-"

    async def scenario() -> None:
        gate = await gate_factory(server.port)
        async with Client(gate.url, idle_timeout=1.5, reconnect_base=0.05) as ab:
            await ab.auth.sign_up(new_email(), PASSWORD)
            live = ab.live(query)
            await live.ready()
            room = ab.presence("room-" + u)
            await room.enter({"name": "Ada"})
            first_me = room.me
            gate.freeze()  # no FIN, no RST: only silence tells
            outcome = await ab.mutate([_set(u, 1)])  # over a new HTTP connection
            await eventually(lambda: ab.connection.stats.connects == 2, what="replaced")
            await eventually(lambda: live.tx >= outcome["tx"], what="resumed")
            assert len(live.result["notes"]) == 1 and not ab._optimistic.pending
            # The room was entered again from the new socket, with the same data.
            await eventually(
                lambda: [p["id"] for p in room.peers] == [room.me] != [first_me], what="re-entered"
            )
            assert room.peers[0]["data"] == {"name": "Ada"}
            assert live.stats.inits == 1
            assert live.result == {"notes": (await ab.query(query))["notes"]}
        await gate.stop()

    run(scenario())
