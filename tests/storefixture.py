"""A migrated store on either backend, for the tests that drive the store directly
(the transactor, the SQL compiler) rather than through a server."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.base import Store
from store.factory import open_store
from tests.serverproc import PostgresDatabase


@contextlib.contextmanager
def migrated_store(backend: str, directory: Path, read_threads: int = 4) -> Iterator[Store]:
    """A fresh, migrated store: an SQLite file in `directory`, or a database of its own
    on TEST_DATABASE_URL's server (skipped without it), closed and dropped after."""
    db = None
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'store.db'}"
    else:
        base = os.environ.get("TEST_DATABASE_URL")
        if not base:
            pytest.skip("TEST_DATABASE_URL is not set")
        db = PostgresDatabase(base)
        url = db.url
    store = open_store(url, read_threads)
    try:
        store.migrate()
        yield store
    finally:
        store.close()
        if db is not None:
            db.drop()
