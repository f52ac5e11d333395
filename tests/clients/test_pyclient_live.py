"""Live queries in the Python client: q-init and q-diffs kept in `$order`, links,
several entities, callbacks and `async for`, SSE, optimistic writes and their
rollback, presence; on both backends against one server per module."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from actorbase_client import ActorbaseError, Client

from tests.clients.conftest import eventually, run, signed_up


def uid() -> str:
    return uuid.uuid4().hex[:8] + "-"


def _ids(rows: list[dict]) -> list[str]:
    return [r["id"] for r in rows]


async def _matches_server(ab: Client, live, query: dict) -> bool:
    """Whether the live result equals the server's answer to the same query now."""
    fresh = await ab.query(query)
    return all(live.result[e] == fresh[e] for e in query)


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_init_and_diffs_keep_the_result_in_order(server, transport):
    query = {"tasks": {"$where": {"done": {"$ne": True}}, "$order": {"priority": "desc"}}}

    async def scenario() -> None:
        async with Client(server.url, transport=transport) as ab:
            await signed_up(ab)
            u = uid()
            for i, p in enumerate([3, 1, 2]):
                await ab.mutate(
                    [{"entity": "tasks", "id": f"{u}t{i}", "op": "set", "data": {"priority": p}}]
                )
            live = ab.live(query)
            first = await live.ready()
            assert _ids(first["tasks"]) == [u + "t0", u + "t2", u + "t1"]
            assert live.stats.inits == 1 and live.tx is not None
            results: list = []
            live.subscribe(results.append)
            await ab.mutate(
                [
                    {"entity": "tasks", "id": u + "t3", "op": "set", "data": {"priority": 5}},
                    {"entity": "tasks", "id": u + "t1", "op": "merge", "data": {"priority": 9}},
                    {"entity": "tasks", "id": u + "t0", "op": "merge", "data": {"done": True}},
                    {"entity": "tasks", "id": u + "t2", "op": "merge", "data": {"note": "x"}},
                ]
            )
            await eventually(lambda: live.stats.diffs >= 1 and not ab._optimistic.pending)
            assert _ids(live.result["tasks"]) == [u + "t1", u + "t3", u + "t2"]
            assert live.result["tasks"][2]["note"] == "x"
            outcome = await ab.mutate(
                [{"entity": "tasks", "id": u + "t2", "op": "merge", "data": {"note": None}}]
            )
            assert "note" not in live.result["tasks"][2]  # optimistic at least
            await eventually(lambda: live.tx >= outcome["tx"], what="the diff")
            assert "note" not in live.result["tasks"][2]
            assert await _matches_server(ab, live, query)
            assert results[0] is first and results[-1] == live.result
            live.close()

    run(scenario())


def test_links_and_several_entities(server):
    query = {"lists": {"$order": {"name": "asc"}, "todos": {"$order": {"title": "asc"}}}}
    both = {"lists": {}, "todos": {"$order": {"title": "desc"}}}

    async def scenario() -> None:
        async with Client(server.url) as ab:
            await signed_up(ab)
            u = uid()
            await ab.mutate(
                [
                    {"entity": "lists", "id": u + "home", "op": "set", "data": {"name": "Home"}},
                    {"entity": "lists", "id": u + "work", "op": "set", "data": {"name": "Work"}},
                    {
                        "entity": "todos",
                        "id": "a",
                        "op": "set",
                        "data": {"title": "a", "listId": u + "home"},
                    },
                ]
            )
            linked, multi = ab.live(query), ab.live(both)
            await linked.ready()
            await multi.ready()
            assert [t["title"] for t in linked.result["lists"][0]["todos"]] == ["a"]
            assert linked.result["lists"][1]["todos"] == []
            await ab.mutate(
                [
                    {
                        "entity": "todos",
                        "id": "b",
                        "op": "set",
                        "data": {"title": "b", "listId": u + "work"},
                    },
                    {
                        "entity": "todos",
                        "id": "c",
                        "op": "set",
                        "data": {"title": "c", "listId": u + "home"},
                    },
                ]
            )
            await eventually(lambda: len(linked.result["lists"][0]["todos"]) == 2, what="link")
            assert [t["title"] for t in linked.result["lists"][1]["todos"]] == ["b"]
            assert await _matches_server(ab, linked, query)
            await eventually(lambda: len(multi.result["todos"]) == 3, what="multi")
            assert [t["title"] for t in multi.result["todos"]] == ["c", "b", "a"]
            assert await _matches_server(ab, multi, both)

    run(scenario())


def test_async_for_yields_each_new_result(server):
    async def scenario() -> None:
        async with Client(server.url) as ab:
            await signed_up(ab)
            u = uid()
            live = ab.live({"events": {"$order": {"n": "asc"}}})
            seen: list[int] = []

            async def consume() -> None:
                async for result in live:
                    seen.append(len(result["events"]))
                    if len(result["events"]) == 3:
                        return

            consumer = asyncio.ensure_future(consume())
            await live.ready()
            for n in range(3):
                await ab.mutate(
                    [{"entity": "events", "id": f"{u}e{n}", "op": "set", "data": {"n": n}}]
                )
            await asyncio.wait_for(consumer, 20)
            # each value is a whole result: a consumer that falls behind skips to the newest
            assert seen[-1] == 3 and seen == sorted(seen) and len(seen) >= 2

            async def drain() -> int:
                return len([result async for result in live])

            draining = asyncio.ensure_future(drain())
            await asyncio.sleep(0)
            live.close()  # ends every iteration
            assert await asyncio.wait_for(draining, 10) == 1

    run(scenario())


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_refused_query_ends_the_iteration_with_the_error(server, transport):
    async def scenario() -> None:
        async with Client(server.url, transport=transport) as ab:
            await signed_up(ab)
            live = ab.live({"tasks": {"$where": {"n": {"$bogus": 1}}}})
            with pytest.raises(ActorbaseError) as refused:
                async for _ in live:
                    pass
            assert refused.value.code == "INVALID_ARGUMENT" and live.closed

    run(scenario())


def test_optimistic_rows_show_at_once_and_a_refused_batch_rolls_back(server, gate_factory):
    query = {"notes": {"$order": {"n": "asc"}}}

    async def scenario() -> None:
        gate = await gate_factory(server.port)
        async with Client(gate.url, reconnect_max=0.5) as ab:
            await signed_up(ab)
            u = uid()
            live = ab.live(query)
            await live.ready()
            gate.cut()  # the server cannot answer: whatever shows is optimistic
            sent = asyncio.ensure_future(
                ab.mutate([{"entity": "notes", "id": u + "n1", "op": "set", "data": {"n": 1}}])
            )
            await eventually(lambda: _ids(live.result["notes"]) == [u + "n1"], what="optimistic")
            assert not sent.done() and ab.outbox.pending == 1
            assert live.result["notes"][0]["userId"] == ab.auth.user["id"]
            gate.open()
            outcome = await asyncio.wait_for(sent, 20)
            assert outcome["results"] == [{"op": "set", "id": u + "n1", "status": "created"}]
            await eventually(lambda: live.tx >= outcome["tx"], what="the diff")
            assert not ab._optimistic.pending
            assert await _matches_server(ab, live, query)

            shown: list = []
            live.subscribe(lambda r: shown.append(_ids(r["notes"])))
            bad = [
                {"entity": "notes", "id": u + "n2", "op": "set", "data": {"n": 2}},
                {"entity": "notes", "id": u + "n1", "op": "set", "data": {"x" * 300: 1}},
            ]
            with pytest.raises(ActorbaseError) as refused:
                await ab.mutate(bad)
            assert (refused.value.code, refused.value.status) == ("INVALID_ARGUMENT", 400)
            assert [u + "n1", u + "n2"] in shown  # applied at once ...
            assert _ids(live.result["notes"]) == [u + "n1"]  # ... and rolled back
            assert live.result["notes"][0]["n"] == 1
            assert ab.outbox.pending == 0
            assert await _matches_server(ab, live, query)
        await gate.stop()

    run(scenario())


def test_presence_me_and_peers_across_two_clients(server):
    async def scenario() -> None:
        async with Client(server.url) as a, Client(server.url) as b:
            await signed_up(a)
            await signed_up(b)
            room = "room-" + uid()
            ra, rb = a.presence(room), b.presence(room)
            await ra.enter({"name": "Ada"})
            assert ra.me is not None and ra.me == a.connection.connection_id
            await rb.enter({"name": "Bob"})
            assert rb.me != ra.me
            await eventually(lambda: {p["id"] for p in ra.peers} == {ra.me, rb.me}, what="join")
            assert {p["id"] for p in rb.peers} == {ra.me, rb.me}
            await rb.update({"name": "Bob", "cursor": 3})
            await eventually(
                lambda: any(p["data"].get("cursor") == 3 for p in ra.peers), what="update"
            )
            await rb.leave()
            await eventually(lambda: [p["id"] for p in ra.peers] == [ra.me], what="leave")
            assert rb.peers == [] and rb.me is None

    run(scenario())


def test_upload_reports_progress_and_gives_a_signed_url(server):
    async def scenario() -> None:
        async with Client(server.url) as ab:
            await signed_up(ab)
            path = f"docs/{uid()}.txt"
            data = b"hello actorbase\n" * 20_000
            progress: list[tuple[int, int]] = []
            uploaded = await ab.storage.upload(
                path,
                data,
                content_type="text/plain",
                on_progress=lambda s, t: progress.append((s, t)),
            )
            assert uploaded["size"] == len(data) and uploaded["path"] == path
            sent = [s for s, _ in progress]
            assert sent == sorted(sent) and len(sent) > 3
            assert progress[-1][0] == progress[-1][1] > len(data)
            signed = await ab.storage.signed_url(path)
            import requests

            fetched = await asyncio.to_thread(requests.get, signed["url"], timeout=30)
            assert fetched.content == data
            await ab.storage.remove(path)
            with pytest.raises(ActorbaseError) as gone:
                await ab.storage.signed_url(path)
            assert gone.value.status == 404

    run(scenario())
