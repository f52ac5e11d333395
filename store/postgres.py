"""PostgreSQL backend: psycopg 3 with a connection pool, rows as JSONB.

Reads run in REPEATABLE READ READ ONLY transactions (one snapshot per read);
the write connection is separate from the read pool so a long read never delays
a commit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator
from typing import TypeVar

import psycopg
import psycopg_pool
from psycopg.adapt import AdaptersMap
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.types.array import ListBinaryDumper

from store.base import Replay, Store, StoreUnavailable, Txn, open_txn
from store.dialect import PostgresDialect
from store.migrations import POSTGRES
from store.txfeed import CHANNEL

T = TypeVar("T")

_MIGRATION_LOCK = 7_700_001
"""Advisory lock id: several nodes starting at once migrate one at a time."""


CONNECT_TIMEOUT = 5
"""Seconds to wait for the database to answer a connection (libpq connect_timeout)."""

ADAPTERS = AdaptersMap(psycopg.adapters)
ADAPTERS.register_dumper(list, ListBinaryDumper)
"""The store's connections send a list parameter (the arrays of `rows_at` and `ids_in`;
each SQL casts its arrays) in binary format:
psycopg builds a text array through a per-element escaping regex in Python (1.5x the
CPU for one element, 6x for 24). A list of only NULLs still goes as text (its element
type is unknown); the casts make either format the same array."""


def _unreachable(url: str, exc: Exception) -> str:
    """One line naming where the database was looked for and why it failed; libpq's
    messages never carry the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return f"DATABASE_URL is not a valid PostgreSQL URL: {str(exc).splitlines()[0]}"
    where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot connect to the database at {where}: {reason}"


class PostgresStore(Store):
    label = "postgresql"
    migrations = POSTGRES
    migration_lock = (f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})",)
    integrity_errors = (psycopg.IntegrityError,)
    index_names_sql = (
        "SELECT indexname FROM pg_indexes "
        "WHERE tablename = 'ab_rows' AND schemaname = current_schema()"
    )
    input_errors = (psycopg.DataError, psycopg.errors.ProgramLimitExceeded)

    def __init__(self, url: str, read_threads: int) -> None:
        """Connect now: StoreUnavailable (one line) if the database does not answer
        within CONNECT_TIMEOUT, rather than the pool's retries and traceback."""
        self.dialect = PostgresDialect()
        self.url = url.replace("postgres://", "postgresql://", 1)
        self._writer_lock = threading.Lock()
        self._writer: psycopg.Connection | None = None
        # One connection first, for its error: the pool would retry for the whole
        # timeout, logging each attempt. Closed: a function worker never writes.
        try:
            self._connect().close()
        except psycopg.Error as exc:
            raise StoreUnavailable(_unreachable(self.url, exc)) from None
        self._pool = psycopg_pool.ConnectionPool(
            self.url,
            min_size=1,
            max_size=read_threads,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT, "context": ADAPTERS},
            open=False,
            timeout=30,
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except psycopg_pool.PoolTimeout as exc:
            self.close()
            raise StoreUnavailable(_unreachable(self.url, exc)) from None

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(
            self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, context=ADAPTERS
        )

    def claim(self) -> None:
        """Any number of processes may share a PostgreSQL database."""

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

    def read_one(self, fn: Callable[[Txn], T]) -> T:
        # An autocommit statement is its own snapshot: one round trip, no BEGIN/COMMIT.
        with self._pool.connection() as conn:
            return fn(Txn(conn, self.dialect))

    def _writer_conn(self) -> psycopg.Connection:
        if self._writer is None or self._writer.closed or self._writer.broken:
            self._writer = self._connect()
        return self._writer

    @contextlib.contextmanager
    def write(self) -> Iterator[Txn]:
        with self._writer_lock, open_txn(self._writer_conn(), self.dialect) as txn:
            yield txn

    def write_group(
        self,
        keys: Collection[tuple[str, str]],
        run: Callable[[Txn], int | None],
        ahead: Callable[[Txn], None] | None = None,
        fresh: bool = False,
    ) -> int:
        """The whole group in one pipeline: two round trips (counter and rows read
        ahead; then every write, the counter, NOTIFY and COMMIT: for a group of
        creates one statement, store.pgbatch) whatever its size. A `fresh` group
        (creates only) is tried first in one round trip, its tx ids numbered by the
        database (`Txn.hold_fresh`).
        A pipeline reports a refused statement without saying whose, and skips what
        follows it: then the group is rolled back and runs again without a pipeline,
        each mutation in a real savepoint, so the refused one fails alone."""
        if not psycopg.Pipeline.is_supported():  # libpq older than 14
            return super().write_group(keys, run, ahead)
        with self._writer_lock:
            conn = self._writer_conn()
            try:
                for attempt in (True, False) if fresh else (False,):
                    shift = self._pipelined(conn, keys, run, ahead, attempt)
                    if shift is not None:
                        return shift
                    if conn.info.transaction_status != TransactionStatus.IDLE:
                        conn.execute("ROLLBACK")
                with open_txn(conn, self.dialect) as txn:
                    self._run_group(txn, keys, run, ahead)
                return 0
            except BaseException:
                if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                raise

    def _pipelined(
        self,
        conn: psycopg.Connection,
        keys: Collection[tuple[str, str]],
        run: Callable[[Txn], int | None],
        ahead: Callable[[Txn], None] | None,
        fresh: bool,
    ) -> int | None:
        """The group in one pipeline, through COMMIT: what to add to its tx ids (see
        `write_group`); None if it must run again (its transaction rolled back, or
        failed and still to roll back)."""
        try:
            with conn.pipeline() as pipeline:
                try:
                    conn.execute("BEGIN")
                    txn = Txn(conn, self.dialect, (psycopg.Error,))
                    self._run_group(txn, keys, run, ahead, fresh)
                    conn.execute("COMMIT")
                except (Replay, psycopg.Error):
                    if conn.broken:
                        raise
                    with contextlib.suppress(psycopg.Error):
                        pipeline.sync()  # past the error, so the pipeline ends cleanly
                    return None
        except psycopg.Error:  # surfaced as the pipeline ended
            if conn.broken:
                raise
            return None
        return txn.numbered_from()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Txn]:
        with self._pool.connection() as conn, open_txn(conn, self.dialect) as txn:
            yield txn

    def reclaim(self, table: str) -> None:
        """VACUUM (outside a transaction: the pool's connections autocommit), which
        blocks neither reads nor writes, rather than wait for autovacuum, which may be
        off or slow to come; skipped if another process is vacuuming it."""
        with self._pool.connection() as conn:
            conn.execute(f"VACUUM (SKIP_LOCKED) {table}")

    def announce(self, txn: Txn, tx: int) -> None:
        txn.notify(CHANNEL, str(tx))

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
