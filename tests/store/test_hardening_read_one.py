"""Store.read_one: a one-statement read gives the same answer as a snapshot read,
and on PostgreSQL runs outside an explicit transaction (one round trip, no BEGIN)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from store.base import Store
from store.rows import Row
from tests.storefixture import migrated_store


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request, tmp_path_factory) -> Iterator[Store]:
    with migrated_store(request.param, tmp_path_factory.mktemp("one"), 2) as opened:
        with opened.write() as txn:
            txn.insert(Row("todos", "t1", {"title": "a"}, 1000, 1000, "usr_a"), txn.next_tx())
        yield opened


def test_read_one_gets_what_read_gets(store: Store) -> None:
    assert store.read_one(lambda txn: txn.get("todos", "t1")) == store.read(
        lambda txn: txn.get("todos", "t1")
    )
    assert store.read_one(lambda txn: txn.get("todos", "nope")) is None


def test_read_one_on_postgres_opens_no_transaction(store: Store) -> None:
    if store.label != "postgresql":
        pytest.skip("SQLite reads are local: no round trip to save")

    def read_only(txn) -> bool:
        """Only the explicit READ ONLY block sets this; an autocommit statement does not."""
        return txn.execute("SELECT current_setting('transaction_read_only')").fetchone()[0] == "on"

    assert store.read(read_only)
    assert not store.read_one(read_only)
