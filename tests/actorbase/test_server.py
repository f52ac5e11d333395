"""The process: configuration errors, durability across restarts, graceful stop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import time

import requests

from tests.serverproc import ADMIN_TOKEN, Api, ServerProcess


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorbase", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_configuration_fails_at_start_with_one_line(tmp_path):
    for env, name in (
        ({"PORT": "seventy"}, "PORT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"RATE_LIMIT": "-1"}, "RATE_LIMIT"),
        ({"GROUP_COMMIT": "maybe"}, "GROUP_COMMIT"),
        ({"ADMIN_TOKEN": "short"}, "ADMIN_TOKEN"),
        ({"SHUTDOWN_TIMEOUT": "0"}, "SHUTDOWN_TIMEOUT"),
    ):
        result = _run({"DATA_DIR": str(tmp_path), **env}, "serve")
        assert result.returncode == 2, (env, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0], result.stderr


def test_flags_override_environment(tmp_path):
    result = _run({"DATA_DIR": str(tmp_path), "PORT": "1"}, "serve", "--port", "nope")
    assert result.returncode == 2 and "PORT" in result.stderr and "'nope'" in result.stderr


def test_port_in_use_is_one_clear_line(tmp_path, make_server):
    server = make_server("sqlite")
    result = _run({"DATA_DIR": str(tmp_path), "PORT": str(server.port)}, "serve")
    assert result.returncode != 0
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_migrate_command(tmp_path):
    env = {"DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    first = _run(env, "migrate")
    assert first.returncode == 0 and "applied" in first.stdout
    second = _run(env, "migrate")
    assert second.returncode == 0 and "nothing to do" in second.stdout


def test_generated_admin_token_is_persisted(tmp_path):
    server = ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    server.env.pop("ADMIN_TOKEN")
    server.start()
    token = (tmp_path / "admin_token").read_text().strip()
    assert oct((tmp_path / "admin_token").stat().st_mode & 0o777) == "0o600"
    assert token in server.log()
    assert Api(server.url, token).get("/api/data/todos").status_code == 200
    assert server.stop() == 0
    server.start()
    assert (tmp_path / "admin_token").read_text().strip() == token
    assert Api(server.url, token).get("/api/data/todos").status_code == 200
    server.stop()


def test_writes_survive_restart_and_kill(make_server, backend):
    server = make_server(backend)
    api = Api(server.url, ADMIN_TOKEN)
    ids = [api.post("/api/data/durable", json={"n": i}).json()["data"]["id"] for i in range(10)]
    assert server.stop(signal.SIGTERM) == 0
    server.start()
    rows = api.get("/api/data/durable", params={"limit": 100}).json()
    assert sorted(r["id"] for r in rows["data"]) == sorted(ids)
    more = api.post("/api/data/durable", json={"n": 10}).json()
    server.stop(signal.SIGKILL)  # acknowledged means committed: no graceful path needed
    server.start()
    assert api.get(f"/api/data/durable/{more['data']['id']}").status_code == 200
    assert api.get("/api/data/durable").json()["total"] == 11


def test_graceful_shutdown_finishes_in_flight_writes(make_server, backend):
    server = make_server(backend)
    api = Api(server.url, ADMIN_TOKEN)
    api.get("/api/data/warm")

    def write(i: int) -> tuple[int, str | None]:
        try:
            response = Api(server.url, ADMIN_TOKEN).post("/api/data/shutdown", json={"n": i})
        except requests.ConnectionError:
            return -1, None
        return response.status_code, response.json()["data"]["id"] if response.ok else None

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(write, i) for i in range(200)]
        time.sleep(0.05)
        started = time.monotonic()
        code = server.stop(signal.SIGTERM)
        elapsed = time.monotonic() - started
        results = [f.result() for f in futures]
    assert code == 0
    assert elapsed < 10
    statuses = {status for status, _ in results}
    assert statuses <= {201, -1}, statuses  # refused after stop, never a 500
    acknowledged = {id for status, id in results if status == 201}
    assert acknowledged
    server.start()
    stored = api.get("/api/data/shutdown", params={"limit": 1000}).json()
    assert acknowledged <= {r["id"] for r in stored["data"]}


def test_sigterm_closes_open_sockets_with_going_away(make_server):
    from tests.wsclient import WsClient

    server = make_server("sqlite")

    async def go() -> tuple[tuple[int | None, str | None], int, float]:
        client = await WsClient.connect(server.url, ADMIN_TOKEN)
        await client.send({"type": "subscribe", "id": "s", "query": {"shutdown_ws": {}}})
        await client.expect("q-init", id="s")
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        closed = await client.closed_with()
        code = await asyncio.get_running_loop().run_in_executor(None, server.proc.wait, 15)
        return closed, code, time.monotonic() - started

    (close_code, _), exit_code, elapsed = asyncio.run(go())
    assert close_code == 1001
    assert exit_code == 0 and elapsed < 10
