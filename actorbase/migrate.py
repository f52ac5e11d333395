"""`actorbase migrate`: apply pending migrations, or (`--status`) list them."""

from __future__ import annotations

from config.settings import Settings
from store.base import Store, StoreUnavailable, Txn
from store.factory import open_store

_MIGRATIONS_TABLE = {
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'ab_migrations'",
    "postgresql": "SELECT count(*) FROM pg_tables "
    "WHERE tablename = 'ab_migrations' AND schemaname = current_schema()",
}
"""Whether ab_migrations exists, per dialect: `--status` only reads, so it cannot
create the table as `Store.migrate` does."""


def _open(settings: Settings) -> Store:
    try:
        return open_store(settings.database_url, 1)
    except StoreUnavailable as exc:
        raise SystemExit(f"actorbase: {exc}") from None


def migrate(settings: Settings) -> int:
    """Apply pending migrations (the Procfile's release phase). An unreachable or
    newer database, or an SQLite file a server holds, exits with one line."""
    store = _open(settings)
    try:
        store.claim()
        applied = store.migrate()
    except StoreUnavailable as exc:
        raise SystemExit(f"actorbase: {exc}") from None
    finally:
        store.close()
    print(
        f"actorbase: {store.label} migrated"
        + (f" (applied {applied})" if applied else ", nothing to do")
    )
    return 0


def _applied(txn: Txn) -> set[int]:
    if not txn.execute(_MIGRATIONS_TABLE[txn.dialect.name]).fetchone()[0]:
        return set()
    return {int(r[0]) for r in txn.execute("SELECT version FROM ab_migrations").fetchall()}


def status(settings: Settings) -> int:
    """Print the applied and pending migrations. Reads only and takes no claim, so it
    answers while a server runs; a missing SQLite file is not created."""
    if settings.is_postgres:
        store = _open(settings)
        try:
            label, known, done = store.label, store.migrations, store.read(_applied)
        finally:
            store.close()
    else:
        from store.migrations import SQLITE
        from store.sqlite import path_from_url

        label, known, done = "sqlite", SQLITE, set()
        if path_from_url(settings.database_url).exists():
            store = _open(settings)
            try:
                done = store.read(_applied)
            finally:
                store.close()
    versions = [version for version, _ in known]
    newer = sorted(done - set(versions))
    print(f"actorbase: {label}")
    print("applied: " + _list(sorted(done & set(versions))))
    print("pending: " + _list([v for v in versions if v not in done]))
    if newer:
        print("unknown: " + _list(newer) + " (migrated by a newer actorbase)")
    return 0


def _list(versions: list[int]) -> str:
    return ", ".join(map(str, versions)) if versions else "none"
