"""Which stored blobs no file points at: what a crash between writing a file and
its metadata row (or between dropping the row and the blob) leaves behind.

The sweep (actors.retention) pages through the blobs (`Blobs.scan`) and deletes the
ones older than ORPHAN_FILE_GRACE that this says are unreferenced. The grace covers
an upload between its blob's commit and its row's insert; a blob only ever gains a
row in that window, so an old blob without one never will.
"""

from __future__ import annotations

from store.base import Txn

CHUNK = 500
"""Keys looked up per statement (SQLite allows 999 parameters on old builds)."""


def unreferenced(txn: Txn, keys: list[str]) -> list[str]:
    """The `keys` no row of ab_files names as its blob (ab_files_backend_key)."""
    referenced: set[str] = set()
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        marks = ", ".join("?" * len(chunk))
        records = txn.execute(
            f"SELECT backend_key FROM ab_files WHERE backend_key IN ({marks})", chunk
        ).fetchall()
        referenced.update(r[0] for r in records)
    return [k for k in keys if k not in referenced]
