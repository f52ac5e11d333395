"""Fixtures: the real server on each backend, and HTTP clients for it.

Every suite that touches the store runs on SQLite and on PostgreSQL; PostgreSQL
needs TEST_DATABASE_URL (CI sets it) and is skipped without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverproc import ADMIN_TOKEN, Api, PostgresDatabase, ServerProcess

BACKENDS = ("sqlite", "postgres")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test shows the log of every server that died under it, which goes with
    its temporary directory otherwise."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in ServerProcess.died():
            title = f"server {server.url} exited {server.proc.returncode}"
            report.sections.append((title, server.log()[-8000:]))


@pytest.fixture(scope="session")
def pg_base_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")


def _database_url(backend: str, data_dir: Path, pg_base_url: str | None, dbs: list) -> str:
    if backend == "sqlite":
        return f"sqlite:///{data_dir / 'actorbase.db'}"
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    db = PostgresDatabase(pg_base_url)
    dbs.append(db)
    return db.url


class Servers:
    """Servers started for one fixture scope, stopped (their databases dropped) when it
    ends: a PostgreSQL server holds several connections, and the database allows 100."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, pg_base_url: str | None):
        self._tmp = tmp_path_factory
        self._pg_base_url = pg_base_url
        self._servers: list[ServerProcess] = []
        self._dbs: list[PostgresDatabase] = []

    def make(self, backend: str, start: bool = True, **env) -> ServerProcess:
        data_dir = self._tmp.mktemp(f"ab-{backend}")
        url = _database_url(backend, data_dir, self._pg_base_url, self._dbs)
        server = ServerProcess(data_dir, url, **env)
        self._servers.append(server)
        return server.start() if start else server

    def close(self) -> None:
        for server in self._servers:
            if server.proc is not None:
                server.stop()
        for db in self._dbs:
            db.drop()


@pytest.fixture
def make_server(tmp_path_factory, pg_base_url) -> Iterator:
    """Factory: `make_server(backend, **env)` starts a server on a fresh database,
    stopped when the test ends."""
    servers = Servers(tmp_path_factory, pg_base_url)
    yield servers.make
    servers.close()


@pytest.fixture(scope="module")
def make_module_server(tmp_path_factory, pg_base_url) -> Iterator:
    """The same for module-scoped fixtures: stopped when the module ends."""
    servers = Servers(tmp_path_factory, pg_base_url)
    yield servers.make
    servers.close()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(make_module_server, backend) -> ServerProcess:
    """One server per test module and backend; tests use distinct entities or users."""
    return make_module_server(backend)


@pytest.fixture
def admin(server) -> Api:
    return Api(server.url, ADMIN_TOKEN)


@pytest.fixture
def anon(server) -> Api:
    return Api(server.url)
