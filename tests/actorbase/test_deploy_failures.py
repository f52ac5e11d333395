"""A server (or `migrate`) that cannot use its database stops with one line on
stderr and a non-zero exit, soon: an unreachable PostgreSQL, a database a newer
version migrated, an SQLite file another process serves."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.serverproc import ServerProcess, free_port

BOUND = 30
"""Generous: the server gives up on a silent database after 5 s (CONNECT_TIMEOUT)."""


def run(server: ServerProcess, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`actorbase <command>` with the server's settings; TimeoutExpired fails the test."""
    return subprocess.run(
        [sys.executable, "-m", "actorbase", command],
        env={**server.env, **env},
        capture_output=True,
        text=True,
        timeout=BOUND,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_refused_connection_is_one_line(tmp_path, command):
    port = free_port()  # nobody listens there
    url = f"postgresql://someone:hunter2secret@127.0.0.1:{port}/app"
    line = one_line(run(ServerProcess(tmp_path, url), command))
    assert line.startswith(f"actorbase: cannot connect to the database at 127.0.0.1:{port}: ")
    assert "hunter2secret" not in line


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_silent_database_is_one_line_after_the_timeout(tmp_path, silent_port, command):
    url = f"postgresql://someone:hunter2secret@127.0.0.1:{silent_port}/app"
    line = one_line(run(ServerProcess(tmp_path, url), command))
    assert line.startswith(f"actorbase: cannot connect to the database at 127.0.0.1:{silent_port}")
    assert "hunter2secret" not in line


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_database_from_a_newer_version_is_refused(make_server, backend, command):
    server = make_server(backend)
    server.stop()
    server.proc = None
    server.sql("INSERT INTO ab_migrations (version) VALUES (999)")
    line = one_line(run(server, command))
    assert line.startswith("actorbase: the database was migrated by a newer actorbase")
    assert "999" in line


def test_a_second_process_on_one_sqlite_file_is_refused(make_server):
    first = make_server("sqlite")
    second = ServerProcess(first.data_dir / "second", first.database_url)
    for command in ("serve", "migrate"):
        line = one_line(run(second, command))
        assert line.startswith("actorbase: another actorbase process is using "), line
    # The first one still serves, and once it stops the file is free again.
    assert first.stop() == 0
    first.proc = None
    migrated = run(second, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    second.start()
    second.stop()
