"""A Procfile deploy on PostgreSQL: `actorbase migrate` (release), then several web
processes started at once on the same database, as Heroku starts dynos."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serverproc import PostgresDatabase, ServerProcess

APP = str(Path(__file__).parents[1] / "apps" / "indexed_app.py")
PROCESSES = 4
ROUNDS = 5


def migrate(database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorbase", "migrate"],
        env={**ServerProcess(data_dir, database_url).env, "APP": APP},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_processes_booting_together_all_start(pg_base_url, tmp_path, round_):
    """Index creation and ANALYZE at start take turns under the migration lock:
    without it two processes deadlock on ab_rows and one of them exits."""
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    db = PostgresDatabase(pg_base_url)
    nodes = [ServerProcess(tmp_path / f"web{i}", db.url, APP=APP) for i in range(PROCESSES)]
    try:
        released = migrate(db.url, tmp_path / "release")
        assert released.returncode == 0, released.stderr
        with concurrent.futures.ThreadPoolExecutor(PROCESSES) as pool:
            started = list(pool.map(lambda n: _start(n), nodes))
        assert started == ["healthy"] * PROCESSES, "\n".join(s for s in started if s != "healthy")
    finally:
        for node in nodes:
            if node.proc is not None:
                node.stop()
        db.drop()


def _start(node: ServerProcess) -> str:
    try:
        node.start(timeout=60)
    except RuntimeError as exc:
        return str(exc)
    return "healthy"
