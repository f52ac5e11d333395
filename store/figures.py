"""Figures about the data for /metrics: the same from every process on one database.

Read on a read-pool thread, in one snapshot, from the tables every process shares, so
that on PostgreSQL two processes report the same numbers (the process's own figures
are counted in memory, see actorbase.metrics).
"""

from __future__ import annotations

import dataclasses

from store import files
from store.base import Txn
from store.stats import user_count, utc_midnight_ms


@dataclasses.dataclass(frozen=True, slots=True)
class DataFigures:
    """Figures about the data, the same from every process on one database."""

    users: int
    active_today: int
    files: int
    file_bytes: int
    last_tx: int


def read_data_figures(txn: Txn) -> DataFigures:
    """The counts /api/admin/stats reads, plus users active today from the sessions
    table (every process's sign-ins and refreshes since UTC midnight)."""
    midnight = utc_midnight_ms()
    (active,) = txn.execute(
        "SELECT count(DISTINCT user_id) FROM ab_sessions WHERE created_at >= ? "
        "OR last_used_at >= ?",
        (midnight, midnight),
    ).fetchone()
    file_count, file_bytes = files.totals(txn)
    return DataFigures(user_count(txn), int(active), file_count, file_bytes, txn.last_tx())
