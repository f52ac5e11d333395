"""Open the backend a DATABASE_URL names."""

from __future__ import annotations

from store.base import Store


def open_store(url: str, read_threads: int = 8) -> Store:
    if url.startswith("sqlite:"):
        from store.sqlite import SQLiteStore

        return SQLiteStore(url)
    from store.postgres import PostgresStore

    return PostgresStore(url, read_threads)
