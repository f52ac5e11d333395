"""WEB_CONCURRENCY: `actorbase serve` as a supervisor of several server processes on one
port (PostgreSQL), and as one process on SQLite however many are asked for."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.actorbase.test_sigterm_load import (
    REST_THREADS,
    WS_CLIENTS,
    Sent,
    _rest_writer,
    _ws_writer,
)
from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, ServerProcess
from tests.wsclient import WsClient


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _alive(pid: int) -> bool:
    """Not yet reaped: a zombie group leader may still have threads, and sockets,
    open; the supervisor reaps a child as soon as it is wholly gone."""
    return Path(f"/proc/{pid}").exists()


def _node(url: str) -> str:
    """The node a fresh connection landed on."""
    response = requests.get(url + "/api/admin/health", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["node"]


def _nodes_answering(url: str, want: int, tries: int = 400) -> set[str]:
    """Distinct nodes seen over fresh connections, 8 at a time, until `want` are."""
    seen: set[str] = set()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(tries // 8):
            seen |= set(pool.map(lambda _: _node(url), range(8)))
            if len(seen) >= want:
                break
    return seen


def _pinned(url: str, node: str) -> Api:
    """An admin client whose keep-alive connection is on `node`."""
    for _ in range(400):
        api = Api(url, ADMIN_TOKEN)
        if api.get("/api/admin/health").json()["node"] == node:
            return api
        api.session.close()
    raise AssertionError(f"no connection landed on {node}")


@pytest.fixture
def pg_server(make_server, pg_base_url):
    def start(**env) -> ServerProcess:
        if not pg_base_url:
            pytest.skip("TEST_DATABASE_URL is not set")
        return make_server("postgres", WEB_CONCURRENCY=2, NODE_HEARTBEAT=0.2, **env)

    return start


def test_two_processes_serve_one_port_as_two_nodes(pg_server):
    server = pg_server()
    nodes = _nodes_answering(server.url, 2)
    assert len(nodes) == 2, nodes
    pids = {int(n.rsplit(":", 1)[1]) for n in nodes}
    assert pids == _children(server.proc.pid)
    # Each is named for its index under NODE_ID, and both count the other as live.
    assert sorted(n.rsplit(":", 1)[0][-2:] for n in nodes) == ["-1", "-2"]
    for _ in range(100):
        if requests.get(server.url + "/api/admin/health", timeout=10).json()["nodes"] == 2:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("health never counted 2 nodes")
    migrated = server.sql("SELECT count(*) FROM ab_migrations")[0][0]
    assert migrated == len(server.sql("SELECT DISTINCT version FROM ab_migrations"))


def test_a_write_through_one_child_reaches_a_subscriber_on_the_other(pg_server):
    server = pg_server()
    a, b = sorted(_nodes_answering(server.url, 2))
    writers = [_pinned(server.url, a), _pinned(server.url, b)]
    ent = "t" + uuid.uuid4().hex[:10]

    async def go() -> list[str]:
        ws = await WsClient.connect(server.url, ADMIN_TOKEN)
        await ws.send({"type": "subscribe", "id": "s", "query": {ent: {}}})
        await ws.expect("q-init", id="s")
        # One write through each node: whichever node holds the socket, one of the two
        # came from the other process.
        got = []
        for i, api in enumerate(writers):
            response = await asyncio.to_thread(api.post, f"/api/data/{ent}", json={"id": f"r{i}"})
            assert response.status_code == 201, response.text
            diff = await ws.expect("q-diff", id="s")
            got.append(json.dumps(diff))
        ws.close()
        return got

    got = asyncio.run(go())
    assert "r0" in got[0] and "r1" in got[1], got


def test_a_killed_child_is_replaced_and_the_port_keeps_answering(pg_server):
    server = pg_server()
    nodes = _nodes_answering(server.url, 2)
    assert len(nodes) == 2, nodes
    victim = sorted(nodes)[0]
    pid = int(victim.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.01)
    # The sibling takes every connection meanwhile: none is refused or reset.
    answered = [_node(server.url) for _ in range(30)]
    assert victim not in answered
    replaced: set[str] = set()
    for _ in range(100):
        replaced = _nodes_answering(server.url, 2, tries=16) - nodes
        if replaced:
            break
        time.sleep(0.1)
    assert len(replaced) == 1, (replaced, server.log())
    assert replaced.pop().rsplit(":", 1)[0] == victim.rsplit(":", 1)[0]  # same index
    assert len(_children(server.proc.pid)) == 2
    assert "exited with status -9: starting another" in server.log()
    assert server.proc.poll() is None


def test_sigterm_to_the_supervisor_under_load_loses_no_answer(pg_server):
    server = pg_server(WS_MESSAGE_RATE=100000)
    assert len(_nodes_answering(server.url, 2)) == 2
    children = _children(server.proc.pid)
    assert len(children) == 2
    user = signup(Api(server.url))
    rest: dict[str, Sent] = {}
    ws: dict[str, Sent] = {}
    stop = threading.Event()

    async def go() -> tuple[float, list[int | None], int]:
        threads = [
            threading.Thread(target=_rest_writer, args=(server.url, n, stop, rest))
            for n in range(REST_THREADS)
        ]
        for thread in threads:
            thread.start()
        clients = [
            asyncio.ensure_future(_ws_writer(server.url, user.access, n, ws))
            for n in range(WS_CLIENTS)
        ]
        await asyncio.sleep(1.5)
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        codes = await asyncio.wait_for(asyncio.gather(*clients), 30)
        exit_code = await asyncio.get_running_loop().run_in_executor(None, server.proc.wait, 30)
        stop.set()
        for thread in threads:
            thread.join(30)
        return signalled, codes, exit_code

    try:
        signalled, close_codes, exit_code = asyncio.run(go())
    finally:
        stop.set()
    assert exit_code == 0, server.log()
    assert not any(_alive(pid) for pid in children)
    assert close_codes == [1001] * WS_CLIENTS
    before = [s for s in rest.values() if s.at < signalled]
    assert len(before) > 20, "no load before the signal"
    assert {s.answer for s in rest.values()} <= {"201", "connection error"}
    assert all(s.answer == "201" for s in before), [s for s in before if s.answer != "201"]
    before = [s for s in ws.values() if s.at < signalled]
    assert len(before) > 20, "no load before the signal"
    assert all(s.answer is not None for s in before), [s for s in before if s.answer is None]
    acknowledged = {id for id, s in rest.items() if s.answer == "201"} | {
        id for id, s in ws.items() if s.answer == "mutate-ok"
    }
    stored = {row[0] for row in server.sql("SELECT id FROM ab_rows WHERE entity = ?", ("sigterm",))}
    assert acknowledged <= stored, sorted(acknowledged - stored)[:10]


def test_sqlite_runs_one_process_and_says_why_once(make_server):
    server = make_server("sqlite", WEB_CONCURRENCY=3)
    assert _nodes_answering(server.url, 2, tries=40) == {_node(server.url)}
    assert _children(server.proc.pid) == set()
    lines = [line for line in server.log().splitlines() if "WEB_CONCURRENCY" in line]
    assert len(lines) == 1, server.log()
    assert "WEB_CONCURRENCY=3: running one process" in lines[0] and "SQLite" in lines[0]
    assert requests.get(server.url + "/api/admin/health", timeout=10).json()["nodes"] == 1


def test_a_bad_web_concurrency_is_refused_with_one_line(make_server):
    server = make_server("sqlite", start=False, WEB_CONCURRENCY="0")
    with pytest.raises(RuntimeError) as failed:
        server.start()
    assert "WEB_CONCURRENCY: must be between 1 and 256, got 0" in str(failed.value)


def test_a_crash_loop_stops_the_service_with_one_line(make_server, pg_base_url, tmp_path):
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    broken = tmp_path / "broken_app.py"
    broken.write_text("raise RuntimeError('broken on purpose')\n")
    server = make_server("postgres", start=False, WEB_CONCURRENCY=2, APP=str(broken))
    with pytest.raises(RuntimeError) as failed:
        server.start(timeout=120)
    assert "server exited 1" in str(failed.value)
    lines = [line for line in server.log().splitlines() if "a crash loop" in line]
    assert len(lines) == 1 and "exited 6 times within 60 s" in lines[0], server.log()
    assert _children(server.proc.pid) == set()


def test_children_stop_when_the_supervisor_is_killed(pg_server):
    server = pg_server()
    children = _children(server.proc.pid)
    assert len(children) == 2
    server.proc.kill()
    server.proc.wait()

    def running(pid: int) -> bool:
        # Orphans are reaped by whoever adopts them, perhaps never in a container.
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    for _ in range(300):
        if not any(running(pid) for pid in children):
            break
        time.sleep(0.1)
    assert not any(running(pid) for pid in children)
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/api/admin/health", timeout=10)
