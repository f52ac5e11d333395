"""Two server processes on one fresh PostgreSQL database."""

from __future__ import annotations

import pytest

from tests.serverproc import PostgresDatabase, ServerProcess


@pytest.fixture
def two_servers_env() -> dict[str, str]:
    """Settings both nodes get; a module overrides this fixture to change them."""
    return {}


@pytest.fixture
def two_servers(pg_base_url, tmp_path, two_servers_env):
    """(database, [node, node]), both started; skipped without TEST_DATABASE_URL. They
    share the signing key through the database, as every process on it does."""
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    db = PostgresDatabase(pg_base_url)
    nodes = [ServerProcess(tmp_path / f"n{i}", db.url, **two_servers_env) for i in range(2)]
    try:
        for node in nodes:
            node.start()
        yield db, nodes
    finally:
        for node in nodes:
            if node.proc is not None:
                node.stop()
        db.drop()
