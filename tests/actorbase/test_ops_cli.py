"""The command line: each command's `--help` shows only its own flags, and
`actorbase migrate --status` lists applied and pending migrations on both backends,
while a server runs too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config.settings import FIELDS
from store.migrations import POSTGRES, SQLITE
from tests.serverproc import PostgresDatabase

BOUND = 60

OWN_FLAGS = {
    "serve": {"--" + f.name.replace("_", "-") for f in FIELDS},
    "migrate": {"--data-dir", "--database-url", "--status"},
    "backup": {"--data-dir", "--database-url", "--storage-url"},
    "restore": {"--data-dir", "--database-url", "--storage-url"},
}
EVERY_FLAG = set().union(*OWN_FLAGS.values())


def actorbase(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorbase", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=BOUND,
    )


@pytest.mark.parametrize("command", sorted(OWN_FLAGS))
def test_help_shows_only_the_commands_own_flags(command):
    result = actorbase(command, "--help")
    assert result.returncode == 0, result.stderr
    shown = {word.rstrip(",") for word in result.stdout.split() if word.startswith("--")}
    assert shown & EVERY_FLAG == OWN_FLAGS[command]


def test_a_flag_of_another_command_is_refused():
    result = actorbase("migrate", "--port", "8000")
    assert result.returncode == 2
    assert "unrecognized arguments: --port" in result.stderr


def versions(backend: str) -> list[int]:
    return [v for v, _ in (SQLITE if backend == "sqlite" else POSTGRES)]


def listed(output: str, label: str) -> list[int]:
    line = next(line for line in output.splitlines() if line.startswith(label + ": "))
    rest = line.removeprefix(label + ": ").split(" (")[0]
    return [] if rest == "none" else [int(v) for v in rest.split(", ")]


def test_status_of_an_sqlite_file_not_yet_made_creates_nothing(tmp_path):
    result = actorbase("migrate", "--status", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert listed(result.stdout, "applied") == []
    assert listed(result.stdout, "pending") == versions("sqlite")
    assert not (tmp_path / "data" / "actorbase.db").exists()


def test_status_of_a_fresh_postgresql_database(pg_base_url, tmp_path):
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    db = PostgresDatabase(pg_base_url)
    try:
        result = actorbase("migrate", "--status", "--database-url", db.url)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("actorbase: postgresql")
        assert listed(result.stdout, "applied") == []
        assert listed(result.stdout, "pending") == versions("postgresql")
    finally:
        db.drop()


def test_status_while_a_server_runs_then_with_a_migration_pending(make_server, backend):
    server = make_server(backend)
    env = {"DATABASE_URL": server.database_url, "DATA_DIR": str(server.data_dir)}
    result = actorbase("migrate", "--status", **env)
    assert result.returncode == 0, result.stderr
    assert listed(result.stdout, "applied") == versions(backend)
    assert listed(result.stdout, "pending") == []
    server.stop()
    server.proc = None
    last = versions(backend)[-1]
    server.sql("DELETE FROM ab_migrations WHERE version = ?", (last,))
    result = actorbase("migrate", "--status", **env)
    assert result.returncode == 0, result.stderr
    assert listed(result.stdout, "applied") == versions(backend)[:-1]
    assert listed(result.stdout, "pending") == [last]
    server.sql("INSERT INTO ab_migrations (version) VALUES (999)")
    result = actorbase("migrate", "--status", **env)
    assert result.returncode == 0, result.stderr
    assert listed(result.stdout, "unknown") == [999]
