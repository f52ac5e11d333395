"""The operator's commands on bad input (issue 14, items 3, 4 and 7): one line, a
non-zero status, and nothing created: `keys rotate` before the first start made an
empty SQLite file (and DATA_DIR), which a later `actorbase restore` refused as not
empty."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.serverproc import PostgresDatabase

BOUND = 60


def actorbase(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorbase", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=BOUND,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "rotate"), "is not migrated for key rotation"),
        (("keys", "rotate", "--url"), "is not migrated for key rotation"),
        (("backup", "{tmp}/backup.tar.gz"), "no database at"),
        (("migrate", "--status"), "pending: 1, "),
    ],
)
def test_commands_before_the_first_start_create_nothing(tmp_path: Path, args, message):
    data_dir = tmp_path / "never-started"
    env = {"DATA_DIR": str(data_dir)}
    done = actorbase(env, *(a.format(tmp=tmp_path) for a in args))
    assert message in done.stdout + done.stderr
    if args[0] != "migrate":
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert not data_dir.exists() and sorted(tmp_path.iterdir()) == []
    # ... so a restore into that directory is still possible.
    restored = actorbase(env, "restore", str(tmp_path / "missing.tar.gz"))
    assert restored.returncode == 1 and "cannot read" in restored.stderr
    assert not data_dir.exists()


def test_keys_rotate_on_a_fresh_postgresql_database(pg_base_url, tmp_path: Path):
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    db = PostgresDatabase(pg_base_url)
    try:
        env = {"DATA_DIR": str(tmp_path / "d"), "DATABASE_URL": db.url}
        for args in (("keys", "rotate"), ("keys", "rotate", "--url")):
            done = actorbase(env, *args)
            assert done.returncode == 1, done.stdout
            assert "postgresql is not migrated for key rotation" in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1
        assert actorbase(env, "migrate").returncode == 0
        done = actorbase(env, "keys", "rotate")
        assert done.returncode == 0 and "version 1 (kid " in done.stdout, done.stderr
    finally:
        db.drop()
