"""The store interface both backends share, and the SQL they have in common.

`Txn` wraps one DB-API connection inside a transaction; reads get a snapshot
(`Store.read`), the transactor alone writes entity rows (`Store.write_group`).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import itertools
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any, TypeVar

import ujson

from store import pgbatch
from store.dialect import Dialect
from store.query.ast import TRUE, Node, OrderKey
from store.query.sql import (
    columns,
    count_sql,
    get_many_sql,
    get_sql,
    order_parts,
    select_sql,
)
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

    def __init__(
        self, conn: Any, dialect: Dialect, deferred: tuple[type[Exception], ...] = ()
    ) -> None:
        self.conn = conn
        self.dialect = dialect
        self._deferred = deferred
        """The driver's errors when statements run pipelined: one may belong to any
        statement sent before it, so a savepoint block cannot tell whose it is."""
        self._savepoints = itertools.count()
        self._held: int | None = None
        """The tx counter as read by `hold_tx`, while this transaction holds it."""
        self._next = 0
        """The last tx id taken while the counter is held."""
        self._known: dict[tuple[str, str], Row | None] = {}
        """Rows as they stand in this transaction (None: absent), while the counter is
        held: nobody else writes entity rows then."""
        self._fresh = False
        """`hold_fresh`: tx ids from 1, numbered by the database in the last statement."""
        self._numbered: Any = None
        """A fresh group's write statement, whose result is the counter's value before it."""
        self._blocks: list[_Block] = []
        self._batch = pgbatch.Batch()
        """Pipelined, the group's row inserts, tx log entries, schema counters, counter
        and NOTIFY wait here and go out as one statement (`_flush`)."""

    @property
    def pipelined(self) -> bool:
        """Statements are sent without waiting; a refusal surfaces later, unattributed."""
        return bool(self._deferred)

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
        if self._fresh:
            raise NotFresh
        self._flush()
        return self.conn.execute(self.dialect.sql(sql), params)

    def executemany(self, sql: str, params: list[tuple[Any, ...]]) -> None:
        """A write run once per parameter tuple."""
        if self._fresh:
            raise NotFresh
        self._wrote()
        self._flush()
        self.conn.cursor().executemany(self.dialect.sql(sql), params)

    def _flush(self) -> None:
        """Send the writes held back (pipelined only), before any other statement, so
        every statement sees the writes made before it."""
        if not self._batch:
            return
        if self._fresh:
            sql = self.dialect.sql(pgbatch.FRESH_SQL)
            self._numbered = self.conn.execute(sql, (self._batch.take(),))
        else:
            self.conn.execute(self.dialect.sql(pgbatch.SQL), (self._batch.take(),))

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
        key = (entity, id)
        if key in self._known:
            return self._known[key]
        record = self.execute(get_sql(entity, self.dialect), (id,)).fetchone()
        row = None if record is None else self._row(entity, record)
        if self._held is not None:
            self._known[key] = row
        return row

    def get_many(self, entity: str, ids: list[str]) -> dict[str, Row]:
        """The rows of `entity` among `ids` by id, in one statement (absent ids are
        left out)."""
        params: list[Any] = []
        records = self.execute(get_many_sql(entity, ids, self.dialect, params), params)
        return {record[0]: self._row(entity, record) for record in records.fetchall()}

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

    def hold_tx(
        self, keys: Collection[tuple[str, str]], ahead: Callable[[Txn], None] | None = None
    ) -> None:
        """Lock the tx counter until COMMIT (on PostgreSQL other processes' writers wait
        for it, so tx ids follow commit order) and read, in the same round trip, the
        rows at `keys` (entity, id), which the group is about to write, and whatever
        `ahead` sends (its statements run after the lock is taken). Until
        `release_tx`, `next_tx` counts in memory and `get` answers from what was read
        and written since."""
        counter = self.execute(
            "SELECT value FROM ab_counters WHERE name = 'tx'" + self.dialect.lock_row
        )
        wanted = list(dict.fromkeys(keys))[:PREFETCH]
        params: list[Any] = []
        records = self.execute(
            self.dialect.rows_at(wanted, f"entity, {columns(self.dialect)}", params), params
        )
        if ahead is not None:
            ahead(self)
        self._held = self._next = int(counter.fetchone()[0])
        self._known = dict.fromkeys(wanted)
        for record in records.fetchall():
            self._known[(record[0], record[1])] = self._row(record[0], record[1:])

    def hold_fresh(self, keys: Collection[tuple[str, str]]) -> None:
        """`hold_tx` for a pipelined group that only creates rows at `keys`: nothing is
        read and the counter is not taken yet. `get` answers that the rows are absent;
        tx ids count from 1, and the group's one write statement (pgbatch.FRESH_SQL,
        sent by `release_tx`) takes the counter and adds its value to them, so the
        lock lasts from that statement to COMMIT instead of the whole group. Any other
        statement (a read, an update) raises NotFresh: the group runs again with
        `hold_tx`. A row already at a key makes the insert, so the group, fail: it runs
        again too, and the create gets its 409."""
        self._fresh = True
        self._held = self._next = 0
        self._known = dict.fromkeys(keys)

    def numbered_from(self) -> int:
        """After COMMIT of a fresh group: the counter's value before it, to add to the tx
        ids it gave out (0 if it wrote nothing)."""
        if self._numbered is None:
            return 0
        row = self._numbered.fetchone()
        return int(row[0]) if row else 0

    def release_tx(self) -> None:
        """Store the tx ids taken since `hold_tx`; the lock itself lasts until COMMIT."""
        if self._held is not None and self._next != self._held:
            if self._fresh:
                self._batch.add(self._next)
            elif self.pipelined:
                self._batch.counter(self._next)
            else:
                self.execute("UPDATE ab_counters SET value = ? WHERE name = 'tx'", (self._next,))
        self._flush()
        self._held = None
        self._known = {}

    def next_tx(self) -> int:
        """Take the next tx id. On PostgreSQL the counter row stays locked until
        COMMIT, so ids follow commit order across processes."""
        if self._held is not None:
            self._next += 1
            return self._next
        return int(
            self.execute(
                "UPDATE ab_counters SET value = value + 1 WHERE name = 'tx' RETURNING value"
            ).fetchone()[0]
        )

    def insert(self, row: Row, tx: int) -> None:
        data = dumps(row.data)
        self._wrote(row.entity, row.id, row, data)
        if self.pipelined:
            self._batch.row(
                row.entity, row.id, data, row.created_at, row.updated_at, row.user_id, tx
            )
            return
        self.execute(
            "INSERT INTO ab_rows (entity, id, data, created_at, updated_at, user_id, tx) "
            f"VALUES (?, ?, {self.dialect.json_in}, ?, ?, ?, ?)",
            (row.entity, row.id, data, row.created_at, row.updated_at, row.user_id, tx),
        )

    def update(self, row: Row, tx: int) -> None:
        data = dumps(row.data)
        self._wrote(row.entity, row.id, row, data)
        self.execute(
            f"UPDATE ab_rows SET data = {self.dialect.json_in}, updated_at = ?, user_id = ?, "
            "tx = ? WHERE entity = ? AND id = ?",
            (data, row.updated_at, row.user_id, tx, row.entity, row.id),
        )

    def delete(self, entity: str, id: str) -> None:
        self._wrote(entity, id)
        self.execute("DELETE FROM ab_rows WHERE entity = ? AND id = ?", (entity, id))

    def log(self, tx: int, changes: list[dict[str, Any]]) -> None:
        self._wrote()
        if self.pipelined:
            self._batch.log(tx, now_ms(), dumps(changes))
            return
        self.execute(
            f"INSERT INTO ab_tx (tx, committed_at, changes) VALUES (?, ?, {self.dialect.json_in})",
            (tx, now_ms(), dumps(changes)),
        )

    def move_counts(self, moves: list[tuple[str, str, str, int]]) -> bool:
        """Pipelined, hold schema counter moves (entity, attribute, type, by; distinct
        keys) for the group's one write statement and True; else False: the caller
        sends its own statement (store.schema_stats)."""
        if not self.pipelined:
            return False
        self._wrote()
        self._batch.counts(moves)
        return True

    def notify(self, channel: str, payload: str) -> None:
        """PostgreSQL's NOTIFY, delivered at COMMIT; pipelined, it goes out with the
        group's writes."""
        if self.pipelined:
            self._batch.notify(channel, payload)
            return
        self.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def _wrote(
        self, entity: str = "", id: str = "", row: Row | None = None, data: str = ""
    ) -> None:
        """Note a write in the innermost savepoint block and, for a row, what `get`
        now answers (a copy decoded from what was stored: nothing shares the caller's
        objects)."""
        if self._blocks:
            self._blocks[-1].writes += 1
        if entity and self._held is not None:
            self._known[(entity, id)] = (
                None
                if row is None
                else Row(entity, id, ujson.loads(data), row.created_at, row.updated_at, row.user_id)
            )
            if self._blocks:
                self._blocks[-1].keys.add((entity, id))

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo just this block on error, keeping the rest of the transaction.

        Pipelined (`deferred` errors), no SAVEPOINT is sent: a block that fails before
        writing has nothing to undo, and one that fails after, or on a driver error
        that may be any earlier statement's, raises Replay: the caller runs the group
        again without a pipeline."""
        block = _Block(self._next)
        self._blocks.append(block)
        name = f"sp{next(self._savepoints)}"
        if not self._deferred:
            self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException as exc:
            self._blocks.pop()
            self._next = block.next_tx
            for key in block.keys:
                self._known.pop(key, None)
            if self._deferred:
                if block.writes or isinstance(exc, self._deferred):
                    raise Replay from exc
                raise
            self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.execute(f"RELEASE SAVEPOINT {name}")
            raise
        self._blocks.pop()
        if self._blocks:
            self._blocks[-1].writes += block.writes
            self._blocks[-1].keys |= block.keys
        if not self._deferred:
            self.execute(f"RELEASE SAVEPOINT {name}")


PREFETCH = 4096
"""Most rows `hold_tx` reads ahead; a group touching more reads the rest one by one."""


@dataclasses.dataclass
class _Block:
    """An open savepoint block: what to restore if it fails."""

    next_tx: int
    writes: int = 0
    keys: set[tuple[str, str]] = dataclasses.field(default_factory=set)


class Replay(Exception):
    """A pipelined group cannot tell which mutation failed, or cannot undo one alone:
    run it again, statement by statement, each mutation in a real savepoint."""


class NotFresh(Replay):
    """A group run with `Txn.hold_fresh` needs a statement of its own (a read, an
    update): run it again with the counter held."""


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

    def read_one(self, fn: Callable[[Txn], T]) -> T:
        """Like `read`, for an `fn` that runs exactly one statement: that statement is
        its own snapshot, so a backend may skip the explicit transaction."""
        return self.read(fn)

    @abc.abstractmethod
    def write(self) -> contextlib.AbstractContextManager[Txn]:
        """The transactor's write transaction, committed when the block exits cleanly."""

    def write_group(
        self,
        keys: Collection[tuple[str, str]],
        run: Callable[[Txn], int | None],
        ahead: Callable[[Txn], None] | None = None,
        fresh: bool = False,
    ) -> int:
        """The transactor's group commit: `run` applies the group in the write
        transaction (each mutation in `Txn.savepoint`) and returns the last tx id
        committed, None if none; the rows at `keys`, and what `ahead` sends, are read
        ahead (`Txn.hold_tx`). `fresh`: the group only creates the rows at `keys`, and
        a backend may number its tx ids after the fact (`Txn.hold_fresh`). Returns what
        to add to the tx ids `run` gave out: 0 unless the backend numbered them so. A
        backend may call `ahead` and `run` more than once, each attempt but the last
        rolled back entirely."""
        with self.write() as txn:
            self._run_group(txn, keys, run, ahead)
        return 0

    def _run_group(
        self,
        txn: Txn,
        keys: Collection[tuple[str, str]],
        run: Callable[[Txn], int | None],
        ahead: Callable[[Txn], None] | None = None,
        fresh: bool = False,
    ) -> None:
        if fresh:
            txn.hold_fresh(keys)
        else:
            txn.hold_tx(keys, ahead)
        last = run(txn)
        if last is not None:
            # Other processes on the same database hear of it at COMMIT; pipelined, it
            # goes out with the group's writes.
            self.announce(txn, last)
        txn.release_tx()

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
    def reclaim(self, table: str) -> None:
        """After a large delete from `table` (a name of ours, not input): make its
        space reusable for new rows now, so the database stays the same size."""

    @abc.abstractmethod
    def announce(self, txn: Txn, tx: int) -> None:
        """Within the transactor's write transaction: make its commit, up to tx id
        `tx`, known to other processes sharing the database (store.txfeed)."""

    @abc.abstractmethod
    def ping(self) -> bool:
        """Whether the database answers now."""

    @abc.abstractmethod
    def close(self) -> None: ...
