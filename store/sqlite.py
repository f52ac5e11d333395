"""SQLite backend: one file under DATA_DIR in WAL mode.

The transactor's thread owns the single write connection; each read-pool thread
keeps its own read connection (WAL lets readers see a snapshot while the writer
commits).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from store.base import Store, StoreUnavailable, Txn, open_txn
from store.dialect import SQLiteDialect
from store.migrations import SQLITE

T = TypeVar("T")


def path_from_url(url: str) -> Path:
    """``sqlite:///data/x.db`` → ``data/x.db``; ``sqlite:////abs/x.db`` → ``/abs/x.db``."""
    return Path(url.removeprefix("sqlite:///"))


class SQLiteStore(Store):
    label = "sqlite"
    migrations = SQLITE
    integrity_errors = (sqlite3.IntegrityError,)
    index_names_sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ab_rows'"
    input_errors = (sqlite3.DataError,)

    def __init__(self, url: str) -> None:
        self.dialect = SQLiteDialect()
        self.path = path_from_url(url)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._writer: sqlite3.Connection | None = None
        self._writer_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._claim: int | None = None

    def claim(self) -> None:
        """One server per file: a second one would never hear of the first one's
        commits (live queries follow their own process's transactor), nor would
        `migrate` be safe under a running server. An exclusive flock on a file beside
        the database, held until `close` or the process ends, so a crash frees it.
        Function workers open the file without claiming it."""
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreUnavailable(
                f"another actorbase process is using {self.path} (it holds {lock}); "
                "SQLite serves one process: use PostgreSQL for more"
            ) from None
        self._claim = fd

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a write is acknowledged only once it is on disk, WAL or not.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _local_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def read(self, fn: Callable[[Txn], T]) -> T:
        conn = self._local_conn()
        conn.execute("BEGIN")
        try:
            return fn(Txn(conn, self.dialect))
        finally:
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def write(self) -> Iterator[Txn]:
        with self._writer_lock:
            if self._writer is None:
                self._writer = self._connect()
            with open_txn(self._writer, self.dialect, "BEGIN IMMEDIATE") as txn:
                yield txn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Txn]:
        # IMMEDIATE takes the write lock up front; busy waits are bounded by `timeout`.
        with open_txn(self._local_conn(), self.dialect, "BEGIN IMMEDIATE") as txn:
            yield txn

    def reclaim(self, table: str) -> None:
        """Nothing to do: freed pages go on the file's free list and new rows take them."""

    def announce(self, txn: Txn, tx: int) -> None:
        """Nobody to tell: one process owns an SQLite file, and its transactor hands
        its change sets to its own live queries directly."""

    def ping(self) -> bool:
        try:
            return self.read(lambda t: t.execute("SELECT 1").fetchone()[0] == 1)
        except sqlite3.Error:
            return False

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._writer = None
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None
