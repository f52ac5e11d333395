"""Run the real actorbase server as a child process, on a fresh database.

Tests speak HTTP/WebSocket/SSE to it exactly as clients do; nothing of ours is
mocked. A PostgreSQL server gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

ADMIN_TOKEN = "test-admin-token-" + "x" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresDatabase:
    """A throwaway database on the server TEST_DATABASE_URL points at."""

    def __init__(self, base_url: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self.base_url = base_url
        self.name = "ab_test_" + secrets.token_hex(6)
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        parts = urlsplit(base_url)
        self.url = urlunsplit(parts._replace(path="/" + self.name))

    def drop(self) -> None:
        with self._psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class ServerProcess:
    """`actorbase serve` on a free port; `url` is its base, `stop` sends a signal."""

    # Started and not stopped by a test: a failing test shows the log of any that died.
    started: ClassVar[list[ServerProcess]] = []

    def __init__(self, data_dir: Path, database_url: str, **env: Any) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AB_")},
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "RATE_LIMIT": "100000",
            "AUTH_RATE_LIMIT": "100000",
            "AUTH_EMAIL_RATE_LIMIT": "100000",
            "MFA_RATE_LIMIT": "100000",
            "UPLOAD_RATE_LIMIT": "100000",
            "BCRYPT_ROUNDS": "4",
            "LOG_LEVEL": "warning",
            # One process per server unless a test asks for more (PostgreSQL's default
            # is one per core: tests signal, pause and kill `proc` as the server).
            "WEB_CONCURRENCY": "1",
            **{k: str(v) for k, v in env.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "actorbase", "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        ServerProcess.started.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            # A busy machine may be slow to answer the first request: keep polling.
            with contextlib.suppress(requests.ConnectionError, requests.Timeout):
                if requests.get(self.url + "/api/admin/health", timeout=2).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal the server and wait; returns its exit code."""
        assert self.proc is not None
        with contextlib.suppress(ValueError):
            ServerProcess.started.remove(self)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    @classmethod
    def died(cls) -> list[ServerProcess]:
        """Servers that exited without a test stopping them."""
        return [s for s in cls.started if s.proc is not None and s.proc.poll() is not None]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (`?` placeholders) on the server's database, outside the
        server: to look at, or set up, what the API does not show."""
        if self.database_url.startswith("sqlite:///"):
            with (
                contextlib.closing(
                    sqlite3.connect(self.database_url.removeprefix("sqlite:///"))
                ) as conn,
                conn,
            ):
                return conn.execute(statement, params).fetchall()
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []


@contextlib.contextmanager
def nodes_on_one_database(
    pg_base_url: str | None, path: Path, *envs: dict[str, Any]
) -> Iterator[tuple[PostgresDatabase, list[ServerProcess]]]:
    """(database, nodes): one started server per env (data dirs n0, n1, … under `path`)
    on one fresh PostgreSQL database; afterwards each is stopped (resumed first, if a
    test paused it) and the database dropped. Skips without TEST_DATABASE_URL."""
    if not pg_base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    db = PostgresDatabase(pg_base_url)
    nodes = [ServerProcess(path / f"n{i}", db.url, **env) for i, env in enumerate(envs)]
    try:
        for node in nodes:
            node.start()
        yield db, nodes
    finally:
        for node in nodes:
            if node.proc is not None:
                node.proc.send_signal(signal.SIGCONT)
                node.stop()
        db.drop()


class Api:
    """A tiny HTTP client bound to a server and a bearer token."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token
        self.session = requests.Session()

    def with_token(self, token: str | None) -> Api:
        return Api(self.base, token)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))  # a copy: the token must not stay in it
        if self.token is not None and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.session.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)


def error_of(response: requests.Response) -> dict[str, Any]:
    """The seed's error object, checked for shape and agreement with the status."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "status"} <= set(error), error
    assert error["status"] == response.status_code, (error, response.status_code)
    return error
