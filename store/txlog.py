"""The tx log's retained floor: which commits ab_tx still holds, and pruning it.

Every reader of ab_tx asks here whether the log still covers what it needs: SSE and
WebSocket resume (actors.subscription), server functions' conflict checks
(store.functions), the PostgreSQL commit feed (store.txfeed). Pruning deletes the
oldest commits past TX_RETENTION, in bounded batches, and raises the floor (the
`tx_floor` counter, the highest tx id pruned) in the same transaction, so a reader
never has to guess from gaps: every commit after the floor is still in the log.

A reader that reads log rows and then the floor, each in its own snapshot (the
transactor's READ COMMITTED write transaction), still decides right: a prune that
committed before its rows were read has raised the floor it reads after them.
"""

from __future__ import annotations

from config.retention import TxRetention
from store.base import Txn

FLOOR = "tx_floor"
"""The floor's row in ab_counters: the log holds every commit after it (migration 7
starts it at 0)."""

FLOOR_SQL = f"SELECT value FROM ab_counters WHERE name = '{FLOOR}'"

BATCH = 1000
"""Most commits deleted in one transaction: a prune never holds locks for long."""


def floor(txn: Txn) -> int:
    return int(txn.execute(FLOOR_SQL).fetchone()[0])


def covers(txn: Txn, since: int) -> bool:
    """Whether the log still holds every commit after tx `since` (read it after the
    log rows it vouches for)."""
    return covered(floor(txn), since)


def covered(floor: int, since: int) -> bool:
    """Whether a log pruned up to `floor` holds every commit after tx `since`."""
    return since >= floor


def prune(txn: Txn, retention: TxRetention, now: int) -> int:
    """Delete up to BATCH of the oldest commits past `retention` (`now` in ms) and
    raise the floor to the last one; returns how many were deleted (BATCH: call again).

    The floor row stays locked until COMMIT; on PostgreSQL a process that finds it
    locked skips this round (another one is pruning), so one prunes at a time."""
    skip = " SKIP LOCKED" if txn.dialect.lock_row else ""
    claimed = txn.execute(FLOOR_SQL + txn.dialect.lock_row + skip).fetchone()
    if claimed is None:
        return 0
    low = int(claimed[0])
    oldest = txn.execute(
        "SELECT tx, committed_at FROM ab_tx WHERE tx > ? ORDER BY tx LIMIT ?", (low, BATCH)
    ).fetchall()
    by_count = low if retention.max_count is None else txn.last_tx() - retention.max_count
    by_age = None if retention.max_age_ms is None else now - retention.max_age_ms
    cut = low
    # Only a prefix in tx order goes, so one number (the floor) says what is left.
    for tx, committed_at in oldest:
        if not (tx <= by_count or (by_age is not None and committed_at < by_age)):
            break
        cut = int(tx)
    if cut == low:
        return 0
    deleted = txn.execute("DELETE FROM ab_tx WHERE tx > ? AND tx <= ?", (low, cut)).rowcount
    txn.execute("UPDATE ab_counters SET value = ? WHERE name = ?", (cut, FLOOR))
    return int(deleted)
