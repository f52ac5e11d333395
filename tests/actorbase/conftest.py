"""Two server processes on one fresh PostgreSQL database."""

from __future__ import annotations

import pytest

from tests.serverproc import nodes_on_one_database


@pytest.fixture
def two_servers_env() -> dict[str, str]:
    """Settings both nodes get; a module overrides this fixture to change them."""
    return {}


@pytest.fixture
def two_servers(pg_base_url, tmp_path, two_servers_env):
    """(database, [node, node]), both started; skipped without TEST_DATABASE_URL. They
    share the signing key through the database, as every process on it does."""
    with nodes_on_one_database(pg_base_url, tmp_path, two_servers_env, two_servers_env) as pair:
        yield pair
