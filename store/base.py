"""The store interface both backends share, and the SQL they have in common.

`Txn` wraps one DB-API connection inside a transaction; reads get a snapshot
(`Store.read`), the transactor alone gets the write transaction (`Store.write`).
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import ujson

from store.dialect import Dialect
from store.query.ast import TRUE, Node, OrderKey
from store.query.sql import count_sql, get_sql, order_parts, select_sql
from store.rows import Row, dumps

T = TypeVar("T")


def now_ms() -> int:
    return int(time.time() * 1000)


class StoreUnavailable(Exception):
    """This process cannot use the database; the message is one line for the operator
    (no password), shown as the server's or `migrate`'s only output."""


class Txn:
    """Row operations inside one open transaction on one connection.

    Not thread-safe: a Txn lives on the thread that opened it.
    """

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect
        self._savepoints = itertools.count()

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(self.dialect.sql(sql), params)

    def _row(self, entity: str, record: tuple[Any, ...]) -> Row:
        data = record[1]
        return Row(
            entity,
            record[0],
            ujson.loads(data) if isinstance(data, str) else data,
            record[2],
            record[3],
            record[4],
        )

    def get(self, entity: str, id: str) -> Row | None:
        record = self.execute(get_sql(entity, self.dialect), (id,)).fetchone()
        return None if record is None else self._row(entity, record)

    def select(
        self,
        entity: str,
        where: Node = TRUE,
        order: tuple[OrderKey, ...] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """Rows of `entity` matching `where`, in `order` then id (see store.query.sql)."""
        params: list[Any] = []
        parts = order_parts(order, self.dialect)
        sql = select_sql(entity, where, parts, self.dialect, params, limit=limit, offset=offset)
        return [self._row(entity, r) for r in self.execute(sql, params).fetchall()]

    def count(self, entity: str, where: Node = TRUE) -> int:
        params: list[Any] = []
        sql = count_sql(entity, where, self.dialect, params)
        return int(self.execute(sql, params).fetchone()[0])

    def last_tx(self) -> int:
        return int(self.execute("SELECT value FROM ab_counters WHERE name = 'tx'").fetchone()[0])

    # -- writes (transactor only) --------------------------------------------------------

    def insert(self, row: Row, tx: int) -> None:
        self.execute(
            "INSERT INTO ab_rows (entity, id, data, created_at, updated_at, user_id, tx) "
            f"VALUES (?, ?, {self.dialect.json_in}, ?, ?, ?, ?)",
            (row.entity, row.id, dumps(row.data), row.created_at, row.updated_at, row.user_id, tx),
        )

    def update(self, row: Row, tx: int) -> None:
        self.execute(
            f"UPDATE ab_rows SET data = {self.dialect.json_in}, updated_at = ?, user_id = ?, "
            "tx = ? WHERE entity = ? AND id = ?",
            (dumps(row.data), row.updated_at, row.user_id, tx, row.entity, row.id),
        )

    def delete(self, entity: str, id: str) -> None:
        self.execute("DELETE FROM ab_rows WHERE entity = ? AND id = ?", (entity, id))

    def next_tx(self) -> int:
        """Take the next tx id. On PostgreSQL the counter row stays locked until
        COMMIT, so ids follow commit order across processes."""
        return int(
            self.execute(
                "UPDATE ab_counters SET value = value + 1 WHERE name = 'tx' RETURNING value"
            ).fetchone()[0]
        )

    def log(self, tx: int, changes: list[dict[str, Any]]) -> None:
        self.execute(
            f"INSERT INTO ab_tx (tx, committed_at, changes) VALUES (?, ?, {self.dialect.json_in})",
            (tx, now_ms(), dumps(changes)),
        )

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo just this block on error, keeping the rest of the transaction."""
        name = f"sp{next(self._savepoints)}"
        self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.execute(f"RELEASE SAVEPOINT {name}")
            raise
        self.execute(f"RELEASE SAVEPOINT {name}")


@contextlib.contextmanager
def open_txn(conn: Any, dialect: Dialect, begin: str = "BEGIN") -> Iterator[Txn]:
    """`begin` … COMMIT on `conn`; ROLLBACK if the block raises and the connection
    still works (a broken PostgreSQL connection has nothing left to roll back)."""
    conn.execute(begin)
    try:
        yield Txn(conn, dialect)
    except BaseException:
        if not getattr(conn, "broken", False):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Store(abc.ABC):
    """A backend. `read` may be called from many threads; `write` from one."""

    dialect: Dialect
    label: str
    """"sqlite" or "postgresql", as /api/admin/health names it."""
    integrity_errors: tuple[type[Exception], ...]
    """The driver's constraint-violation errors (a duplicate key is a CONFLICT)."""
    input_errors: tuple[type[Exception], ...]
    """The driver's errors for a value the database cannot take (too large for an
    index, say): the writer's fault is its input, an INVALID_ARGUMENT."""

    migrations: list[tuple[int, list[str]]]
    """This backend's list in store/migrations.py."""
    migration_lock: tuple[str, ...] = ()
    """Statements that make concurrent `migrate` calls (several nodes) take turns."""

    def migrate(self) -> list[int]:
        """Apply pending migrations in one transaction; return the versions applied.
        StoreUnavailable if a newer version migrated the database: this code would
        misread its tables."""
        with self.write() as txn:
            for statement in self.migration_lock:
                txn.execute(statement)
            txn.execute("CREATE TABLE IF NOT EXISTS ab_migrations (version INTEGER PRIMARY KEY)")
            done = {r[0] for r in txn.execute("SELECT version FROM ab_migrations").fetchall()}
            known = max(version for version, _ in self.migrations)
            if done and max(done) > known:
                raise StoreUnavailable(
                    f"the database was migrated by a newer actorbase (migration {max(done)}; "
                    f"this version knows up to {known})"
                )
            applied = []
            for version, statements in self.migrations:
                if version in done:
                    continue
                for statement in statements:
                    txn.execute(statement)
                txn.execute("INSERT INTO ab_migrations (version) VALUES (?)", (version,))
                applied.append(version)
            return applied

    def secret(self, name: str, make: Callable[[], str]) -> str:
        """The secret `name` in ab_secrets; the first process to ask stores `make()`.
        On PostgreSQL a concurrent INSERT waits for the other one's COMMIT and then does
        nothing, and the SELECT after it (a new snapshot) reads the winner's value."""
        select = "SELECT value FROM ab_secrets WHERE name = ?"
        with self.transaction() as txn:
            row = txn.execute(select, (name,)).fetchone()
            if row is not None:
                return str(row[0])
        value = make()
        with self.transaction() as txn:
            txn.execute(
                "INSERT INTO ab_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (name, value),
            )
            return str(txn.execute(select, (name,)).fetchone()[0])

    @abc.abstractmethod
    def claim(self) -> None:
        """Make sure this process may serve the database (a server, or `migrate`);
        StoreUnavailable if not."""

    @abc.abstractmethod
    def read(self, fn: Callable[[Txn], T]) -> T:
        """Run `fn` in a read-only snapshot on the calling thread (a pool thread)."""

    @abc.abstractmethod
    def write(self) -> contextlib.AbstractContextManager[Txn]:
        """The transactor's write transaction, committed when the block exits cleanly."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Txn]:
        """A read-write transaction on the calling (pool) thread, for system tables
        outside the entity data (accounts, sessions, file metadata). Entity rows are
        written only by the transactor."""

    index_names_sql: str
    """The names of the indexes on ab_rows, one per row."""

    def ensure_index(self, entity: str, path: tuple[str, ...]) -> str:
        """Create, if missing, a partial expression index on attribute `path` of
        `entity` (equality on it, ordered by createdAt); returns the index name.
        Names are validated, not bound (DDL takes no parameters): ValueError if bad."""
        name, ddl = self.dialect.index_sql(entity, path)
        self.create_indexes([(name, ddl)])
        return name

    def create_indexes(self, indexes: list[tuple[str, str]]) -> None:
        """Run the DDL of each (name, DDL) whose index is missing, then refresh the
        planner's statistics so the indexes are chosen (SQLite never does it by
        itself): in one transaction under the migration lock, as processes starting
        together on PostgreSQL would otherwise deadlock on ab_rows (index builds and
        ANALYZE in different orders)."""
        if not indexes:
            return
        with self.write() as txn:
            for statement in self.migration_lock:
                txn.execute(statement)
            existing = {r[0] for r in txn.execute(self.index_names_sql).fetchall()}
            for name, ddl in indexes:
                if name not in existing:
                    txn.execute(ddl)
            for statement in self.dialect.analyze:
                txn.execute(statement)

    @abc.abstractmethod
    def announce(self, txn: Txn, tx: int) -> None:
        """Within the transactor's write transaction: make its commit, up to tx id
        `tx`, known to other processes sharing the database (store.txfeed)."""

    @abc.abstractmethod
    def ping(self) -> bool:
        """Whether the database answers now."""

    @abc.abstractmethod
    def close(self) -> None: ...
