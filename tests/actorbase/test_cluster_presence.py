"""Presence across server processes on one PostgreSQL database (issue 15, items 1 and
4): peers on different nodes see each other, REST answers for the whole cluster, a
killed node's peers leave within the heartbeat bound, every member hears one room's
changes in one order, the cap holds over all nodes, NOTIFY payloads stay under
PostgreSQL's limit, and health names the node and counts the live ones."""

from __future__ import annotations

import asyncio
import itertools
import signal
import threading
import uuid
from typing import Any

import psycopg
import pytest

from store.presence_link import APPLICATION_NAME
from store.presence_tables import CHANNEL
from tests.serverproc import (
    ADMIN_TOKEN,
    Api,
    ServerProcess,
    nodes_on_one_database,
)
from tests.wsclient import WsClient, apply_presence

ENV = {
    "NODE_HEARTBEAT": "0.2",
    "NODE_TIMEOUT": "3",
    "PRESENCE_MAX_PEERS": "8",
    "PRESENCE_RATE": "20",
    "PRESENCE_MAX_BYTES": "30000",
}

_ids = itertools.count()


@pytest.fixture(scope="module")
def cluster(pg_base_url, tmp_path_factory):
    """Three nodes on one database, for the tests that kill none."""
    path = tmp_path_factory.mktemp("cluster")
    with nodes_on_one_database(pg_base_url, path, ENV, ENV, ENV) as three:
        yield three


@pytest.fixture
def pair_env() -> dict[str, str]:
    return {}


@pytest.fixture
def pair(pg_base_url, tmp_path, pair_env):
    """Two nodes of their own: one gets killed."""
    env = {**ENV, **pair_env}
    with nodes_on_one_database(pg_base_url, tmp_path, env, env) as two:
        yield two


def _room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


class Member:
    """A socket in one room, keeping the room as it hears it and every delta."""

    def __init__(self, ws: WsClient, room: str) -> None:
        self.ws = ws
        self.room = room
        self.peers: dict[str, dict[str, Any]] = {}
        self.deltas: list[dict[str, Any]] = []
        self.snapshots: list[dict[str, Any]] = []
        """Snapshots after the first: only a member whose own peer left and came back."""
        self.id = ""

    @classmethod
    async def enter(cls, node: ServerProcess, room: str, data: dict[str, Any]) -> Member:
        member = cls(await WsClient.connect(node.url, ADMIN_TOKEN), room)
        await member.ws.send(
            {"type": "presence-enter", "id": f"e{next(_ids)}", "room": room, "data": data}
        )
        snapshot = await member.ws.expect("presence-change", room=room)
        assert "peers" in snapshot, snapshot
        apply_presence(member.peers, snapshot)
        mine = [p for p in snapshot["peers"] if p["data"] == data]
        member.id = mine[-1]["id"]
        return member

    async def until(self, done, within: float = 10) -> None:
        """Read deltas until `done(self)` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not done(self):
            left = deadline - loop.time()
            assert left > 0, f"timed out; heard {self.deltas}, room {self.peers}"
            m = await self.ws.expect("presence-change", within=left, room=self.room)
            (self.deltas if "event" in m else self.snapshots).append(m)
            apply_presence(self.peers, m)

    async def send(self, kind: str, data: dict[str, Any] | None = None) -> None:
        message = {"type": f"presence-{kind}", "room": self.room}
        if data is not None:
            message["data"] = data
        await self.ws.send(message)


async def _nodes_become(node: ServerProcess, count: int) -> None:
    """Wait until `node`'s health counts `count` live nodes (as of its last beat)."""
    for _ in range(100):
        health = await asyncio.to_thread(Api(node.url).get, "/api/admin/health")
        if health.json()["nodes"] == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"health says {health.json()['nodes']} nodes, not {count}")


def _rest_peers(node: ServerProcess, room: str) -> dict[str, Any]:
    response = Api(node.url, ADMIN_TOKEN).get(f"/api/presence/{room}")
    assert response.status_code == 200, response.text
    return {p["id"]: p["data"] for p in response.json()["peers"]}


def test_peers_on_two_nodes_see_each_other(cluster):
    _, (a, b, _c) = cluster
    room = _room()

    async def go():
        ma = await Member.enter(a, room, {"name": "a"})
        assert list(ma.peers) == [ma.id]
        mb = await Member.enter(b, room, {"name": "b"})
        # B's snapshot has A's peer, then itself; A hears B join.
        assert [p["data"] for p in mb.peers.values()] == [{"name": "a"}, {"name": "b"}]
        await ma.until(lambda m: mb.id in m.peers)
        assert ma.deltas[-1]["event"] == "join" and ma.deltas[-1]["peer"]["data"] == {"name": "b"}
        for node in (a, b):
            assert await asyncio.to_thread(_rest_peers, node, room) == {
                ma.id: {"name": "a"},
                mb.id: {"name": "b"},
            }
        # An update on A reaches B (and A itself), then A leaves.
        await ma.send("update", {"name": "a", "x": 1})
        await mb.until(lambda m: m.peers[ma.id]["data"] == {"name": "a", "x": 1})
        assert mb.deltas[-1]["event"] == "update"
        await ma.until(lambda m: m.peers[ma.id]["data"] == {"name": "a", "x": 1})
        await ma.send("leave")
        await mb.until(lambda m: ma.id not in m.peers)
        assert mb.deltas[-1]["event"] == "leave"
        assert mb.deltas[-1]["peer"]["data"] == {"name": "a", "x": 1}
        assert await asyncio.to_thread(_rest_peers, a, room) == {mb.id: {"name": "b"}}
        ma.ws.close()
        # Closing the socket leaves too.
        mb.ws.close()
        for _ in range(100):
            if not await asyncio.to_thread(_rest_peers, a, room):
                break
            await asyncio.sleep(0.1)
        assert await asyncio.to_thread(_rest_peers, a, room) == {}

    asyncio.run(go())


def test_one_order_per_room_for_every_member(cluster):
    """Peers on three nodes change at once; every member hears the changes in the same
    order (a change replaced by a later one of the same peer may be skipped)."""
    _, nodes = cluster
    room = _room()

    async def act(node: ServerProcess, name: str) -> None:
        peer = await WsClient.connect(node.url, ADMIN_TOKEN)
        await peer.send({"type": "presence-enter", "room": room, "data": {"n": name, "s": 0}})
        for step in range(1, 6):
            await asyncio.sleep(0.06)
            await peer.send(
                {"type": "presence-update", "room": room, "data": {"n": name, "s": step}}
            )
        await asyncio.sleep(0.06)
        await peer.send({"type": "presence-leave", "room": room})
        await asyncio.sleep(0.2)
        peer.close()

    async def go():
        members = [await Member.enter(n, room, {"member": i}) for i, n in enumerate(nodes)]
        for m in members:
            await m.until(lambda m: len(m.peers) == 3)
            m.deltas.clear()
        await asyncio.gather(*(act(n, f"x{i}") for i, n in enumerate(nodes)))

        def all_left(m: Member) -> bool:
            return sum(d["event"] == "leave" for d in m.deltas) == 3

        for m in members:
            await m.until(all_left)
            assert not m.snapshots
        heard = [
            [
                (
                    d["peer"]["data"]["n"],
                    "leave" if d["event"] == "leave" else d["peer"]["data"]["s"],
                )
                for d in m.deltas
            ]
            for m in members
        ]
        for seq in heard:
            assert {e for e in seq if e[1] == "leave"} == {(f"x{i}", "leave") for i in range(3)}
            assert {e for e in seq if e[1] == 5} == {(f"x{i}", 5) for i in range(3)}
        # Any two changes heard by two members come in the same order to both.
        positions = [{e: i for i, e in enumerate(seq)} for seq in heard]
        for p, q in itertools.combinations(positions, 2):
            common = [e for e in p if e in q]
            assert sorted(common, key=p.__getitem__) == sorted(common, key=q.__getitem__)
        # The three nodes' changes really interleaved.
        assert len({e[0] for e in heard[0][:6]}) > 1
        for m in members:
            m.ws.close()

    asyncio.run(go())


def test_room_cap_holds_over_all_nodes(cluster):
    _, nodes = cluster
    room = _room()

    async def go():
        members = [
            await Member.enter(nodes[i % 3], room, {"i": i}) for i in range(8)
        ]  # PRESENCE_MAX_PEERS=8, spread over the nodes
        for node in nodes:
            extra = await WsClient.connect(node.url, ADMIN_TOKEN)
            await extra.send({"type": "presence-enter", "id": "full", "room": room, "data": {}})
            error = await extra.expect("error", id="full")
            assert error["error"]["code"] == "RESOURCE_EXCEEDED", error
            # Not in the room: an update is refused, and nothing of the room comes.
            await extra.send({"type": "presence-update", "id": "u", "room": room, "data": {}})
            assert (await extra.expect("error", id="u"))["error"]["code"] == "NOT_FOUND"
            extra.close()
        assert len(await asyncio.to_thread(_rest_peers, nodes[1], room)) == 8
        # One leaves on A: a peer on C may enter.
        await members[0].send("leave")
        members[0].ws.close()
        for _ in range(100):
            if len(await asyncio.to_thread(_rest_peers, nodes[2], room)) == 7:
                break
            await asyncio.sleep(0.1)
        late = await Member.enter(nodes[2], room, {"late": True})
        assert len(late.peers) == 8
        for m in [*members[1:], late]:
            m.ws.close()

    asyncio.run(go())


def test_large_state_and_bursts_keep_notify_small(cluster):
    db, (a, b, _c) = cluster
    room = _room()
    payloads: list[str] = []
    listening = threading.Event()
    stop = threading.Event()

    def listen() -> None:
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            listening.set()
            while not stop.is_set():
                payloads.extend(n.payload for n in conn.notifies(timeout=0.2) if room in n.payload)

    thread = threading.Thread(target=listen)
    thread.start()
    listening.wait(10)

    async def go():
        mb = await Member.enter(b, room, {"on": "b"})
        big = {"blob": "é" * 12_000}  # 24,000 bytes of UTF-8: no NOTIFY could carry it
        ma = await Member.enter(a, room, big)
        await mb.until(lambda m: ma.id in m.peers)
        assert mb.peers[ma.id]["data"] == big
        assert (await asyncio.to_thread(_rest_peers, b, room))[ma.id] == big
        # A burst of 100 updates: coalesced, the latest wins.
        for i in range(100):
            await ma.send("update", {"i": i})
        await mb.until(lambda m: m.peers[ma.id]["data"] == {"i": 99})
        await asyncio.sleep(0.3)
        ma.ws.close()
        mb.ws.close()

    try:
        asyncio.run(go())
    finally:
        stop.set()
        thread.join()
    assert payloads and all(len(p.encode()) < 8000 for p in payloads)
    assert any('"ref"' in p for p in payloads)  # the big state went by reference
    updates = sum(p.count('"update"') for p in payloads)
    assert updates < 50, updates  # not one per update sent


def test_health_and_stats_name_the_node(cluster):
    _, nodes = cluster
    names = set()
    for node in nodes:
        asyncio.run(_nodes_become(node, 3))
        health = Api(node.url).get("/api/admin/health").json()
        assert health["nodes"] == 3
        assert health["node"].endswith(f":{node.proc.pid}")
        names.add(health["node"])
        stats = Api(node.url, ADMIN_TOKEN).get("/api/admin/stats").json()
        assert stats["node"] == health["node"]
        assert {n["node"] for n in stats["nodes"]} >= {health["node"]}
        assert set(stats) >= {"queries", "mutations", "subscriptions", "storage", "users"}
    assert len(names) == 3
    stats = Api(nodes[0].url, ADMIN_TOKEN).get("/api/admin/stats").json()
    assert {n["node"] for n in stats["nodes"]} == names
    assert all("subscriptions" in n and "connections" in n for n in stats["nodes"])


def test_killed_node_peers_leave_within_the_bound(pair):
    _, (a, b) = pair

    async def go():
        room, other = _room(), _room()
        ma = await Member.enter(a, room, {"on": "a"})
        mb = await Member.enter(b, room, {"on": "b"})
        mb2 = await Member.enter(b, other, {"on": "b"})
        ma2 = await Member.enter(a, other, {"on": "a"})
        await ma.until(lambda m: mb.id in m.peers)
        await _nodes_become(a, 2)
        b.stop(signal.SIGKILL)
        # NODE_TIMEOUT=3 and a heartbeat every 0.2 s: well within 10 s.
        await ma.until(lambda m: mb.id not in m.peers)
        await ma2.until(lambda m: mb2.id not in m.peers)
        assert ma.deltas[-1]["event"] == "leave" and ma.deltas[-1]["peer"]["data"] == {"on": "b"}
        assert await asyncio.to_thread(_rest_peers, a, room) == {ma.id: {"on": "a"}}
        assert await asyncio.to_thread(_rest_peers, a, other) == {ma2.id: {"on": "a"}}
        # The count is the heartbeat's (the same transaction removed B): at most one
        # heartbeat behind what A's members heard.
        await _nodes_become(a, 1)
        ma.ws.close()
        ma2.ws.close()

    asyncio.run(go())


def test_lost_connections_come_back_and_catch_up(cluster):
    """The presence connections cut: a change made meanwhile still reaches the other
    node's members (the feed reads its rooms afresh, the writer writes again)."""
    db, (a, b, _c) = cluster
    room = _room()

    async def go():
        ma = await Member.enter(a, room, {"on": "a"})
        mb = await Member.enter(b, room, {"on": "b"})
        await ma.until(lambda m: mb.id in m.peers)
        with psycopg.connect(db.url, autocommit=True) as conn:
            cut = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = current_database()",
                (APPLICATION_NAME,),
            ).fetchone()[0]
        assert cut == 6  # a writer and a feed per node
        await mb.send("update", {"on": "b", "after": "cut"})
        await ma.until(lambda m: m.peers[mb.id]["data"] == {"on": "b", "after": "cut"})
        late = await Member.enter(b, room, {"late": True})
        await ma.until(lambda m: late.id in m.peers)
        assert len(late.peers) == 3
        for m in (ma, mb, late):
            m.ws.close()

    asyncio.run(go())


def test_paused_node_comes_back_and_its_peers_enter_again(pair):
    """A node stopped past the bound (SIGSTOP) is taken for dead; once it runs again
    it finds its row gone, puts it back and its peers enter again."""
    _, (a, b) = pair

    async def go():
        room = _room()
        ma = await Member.enter(a, room, {"on": "a"})
        mb = await Member.enter(b, room, {"on": "b"})
        await ma.until(lambda m: mb.id in m.peers)
        assert b.proc is not None
        b.proc.send_signal(signal.SIGSTOP)
        try:
            await ma.until(lambda m: mb.id not in m.peers)
        finally:
            b.proc.send_signal(signal.SIGCONT)
        await ma.until(lambda m: mb.id in m.peers)
        assert [d["event"] for d in ma.deltas[-2:]] == ["leave", "join"]
        assert ma.peers[mb.id]["data"] == {"on": "b"}
        assert set(await asyncio.to_thread(_rest_peers, a, room)) == {ma.id, mb.id}
        # B's own member was out of the room meanwhile: it hears the room afresh.
        await mb.until(lambda m: m.snapshots)
        assert mb.peers.keys() == {ma.id, mb.id}
        ma.ws.close()
        mb.ws.close()

    asyncio.run(go())


@pytest.mark.parametrize("pair_env", [{"NODE_TIMEOUT": "600"}])
def test_stopped_node_peers_leave_at_once(pair):
    """SIGTERM: the node removes its own peers as it stops, long before NODE_TIMEOUT
    (600 s here) would have the others do it."""
    _, (a, b) = pair

    async def go():
        room = _room()
        ma = await Member.enter(a, room, {"on": "a"})
        mb = await Member.enter(b, room, {"on": "b"})
        await ma.until(lambda m: mb.id in m.peers)
        assert await asyncio.to_thread(b.stop) == 0
        await ma.until(lambda m: mb.id not in m.peers)
        assert ma.deltas[-1]["event"] == "leave"
        assert await asyncio.to_thread(_rest_peers, a, room) == {ma.id: {"on": "a"}}
        await _nodes_become(a, 1)
        ma.ws.close()

    asyncio.run(go())
