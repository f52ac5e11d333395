"""PostgreSQL backend: psycopg 3 with a connection pool, rows as JSONB.

Reads run in REPEATABLE READ READ ONLY transactions (one snapshot per read);
the write connection is separate from the read pool so a long read never delays
a commit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
import psycopg_pool

from store.base import Store, Txn, open_txn
from store.dialect import PostgresDialect
from store.migrations import POSTGRES
from store.txfeed import CHANNEL

T = TypeVar("T")

_MIGRATION_LOCK = 7_700_001
"""Advisory lock id: several nodes starting at once migrate one at a time."""


class PostgresStore(Store):
    label = "postgresql"
    migrations = POSTGRES
    migration_lock = (f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})",)
    integrity_errors = (psycopg.IntegrityError,)

    def __init__(self, url: str, read_threads: int) -> None:
        self.dialect = PostgresDialect()
        self.url = url.replace("postgres://", "postgresql://", 1)
        self._pool = psycopg_pool.ConnectionPool(
            self.url,
            min_size=1,
            max_size=read_threads,
            kwargs={"autocommit": True},
            open=False,
            timeout=30,
        )
        self._pool.open(wait=True, timeout=30)
        self._writer: psycopg.Connection | None = None
        self._writer_lock = threading.Lock()

    def read(self, fn: Callable[[Txn], T]) -> T:
        # Pipeline mode sends BEGIN with the first statement and COMMIT without waiting
        # on its own: a one-statement read (a row by id, a session) is two round trips,
        # not three.
        with self._pool.connection() as conn, conn.pipeline():
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return fn(Txn(conn, self.dialect))
            finally:
                conn.execute("COMMIT")

    def _writer_conn(self) -> psycopg.Connection:
        if self._writer is None or self._writer.closed or self._writer.broken:
            self._writer = psycopg.connect(self.url, autocommit=True)
        return self._writer

    @contextlib.contextmanager
    def write(self) -> Iterator[Txn]:
        with self._writer_lock, open_txn(self._writer_conn(), self.dialect) as txn:
            yield txn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Txn]:
        with self._pool.connection() as conn, open_txn(conn, self.dialect) as txn:
            yield txn

    def announce(self, txn: Txn, tx: int) -> None:
        txn.execute("SELECT pg_notify(?, ?)", (CHANNEL, str(tx)))

    def ping(self) -> bool:
        try:
            return self.read(lambda t: t.execute("SELECT 1").fetchone()[0] == 1)
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            return False

    def close(self) -> None:
        self._pool.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
