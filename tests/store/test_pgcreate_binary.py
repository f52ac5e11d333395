"""The group commit's values on real SQLite and PostgreSQL stores. On PostgreSQL a
pipelined group's writes go out as one statement with one JSON parameter
(store.pgbatch), and the `rows_at` / `ids_in` reads send list parameters in binary
(store.postgres.ADAPTERS). Whatever the values (characters JSON or a text array would
have to escape, a column of only NULLs, tx ids whose smallest integer type changes
within a group), a group goes through in one pipelined attempt and stores exactly
what was written."""

from __future__ import annotations

import pytest
import ujson

from actors.transactor import Transactor, submit
from store.base import Txn, now_ms
from store.mutations import Op
from store.principal import ADMIN, Principal
from store.rows import Row
from tests.actors.test_pgwrite_group import writes_held
from tests.storefixture import migrated_store

AWKWARD = ['"', "\\", "{", "}", ",", " ", "NULL", "null", "", "é", "😀", "a b,c{d}\"e'f\\"]
"""Characters and words a text array quotes or escapes, and non-ASCII."""

IDS = ["plain", "NULL", "null", "a.b", "x:y@z~w-v_u", "e" * 120]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    with migrated_store(request.param, tmp_path) as store:
        yield store


def _set_counter(store, value: int) -> None:
    with store.write() as txn:
        txn.execute("UPDATE ab_counters SET value = ? WHERE name = 'tx'", (value,))


def _rows(n: int, owners: list[str | None], at: int) -> list[Row]:
    return [
        Row(
            "things",
            IDS[i] if i < len(IDS) else f"{IDS[i % len(IDS)]}-{i}",
            {"text": AWKWARD[i % len(AWKWARD)], "n": i, "big": 2**62 + i, "list": AWKWARD[:3]},
            at,
            at + i,
            owners[i % len(owners)],
        )
        for i in range(n)
    ]


def _group(store, rows: list[Row]) -> tuple[int, list[int]]:
    """Write `rows` as one group, a tx each; (attempts, tx ids)."""
    attempts = 0
    taken: list[int] = []

    def run(txn: Txn) -> int | None:
        nonlocal attempts, taken
        attempts += 1
        taken = []
        for row in rows:
            assert txn.get(row.entity, row.id) is None
            tx = txn.next_tx()
            txn.insert(row, tx)
            txn.log(tx, [{"entity": row.entity, "id": row.id, "after": row.to_wire()}])
            taken.append(tx)
        return taken[-1]

    store.write_group([(r.entity, r.id) for r in rows], run)
    return attempts, taken


def _stored(store, rows: list[Row]) -> tuple[dict[str, Row], dict[int, list]]:
    def read(txn: Txn) -> tuple[dict[str, Row], dict[int, list]]:
        found = txn.get_many("things", [r.id for r in rows])
        log = {
            int(tx): ujson.loads(changes) if isinstance(changes, str) else changes
            for tx, changes in txn.execute("SELECT tx, changes FROM ab_tx").fetchall()
        }
        return found, log

    return store.read(read)


@pytest.mark.parametrize(
    ("counter", "owners"),
    [
        (0, [None]),  # tx ids fit int2; user_id only NULLs
        (32_760, ["u1", None, "u2"]),  # int2 → int4 within the group; some NULLs
        (2**31 - 5, ["u1"]),  # int4 → int8 within the group
    ],
)
def test_a_group_lands_in_one_attempt_exactly_as_written(store, counter, owners):
    _set_counter(store, counter)
    rows = _rows(14, owners, now_ms())
    attempts, taken = _group(store, rows)
    assert attempts == 1, "the pipelined group was refused and ran again"
    assert taken == list(range(counter + 1, counter + 15))
    found, log = _stored(store, rows)
    assert found == {r.id: r for r in rows}
    for tx, row in zip(taken, rows, strict=True):
        assert log[tx] == [{"entity": "things", "id": row.id, "after": row.to_wire()}]


def test_a_second_group_reads_the_first_groups_rows_ahead(store):
    """`rows_at` (the group's read-ahead) and `ids_in` (`get_many`) with ids a text
    array would quote, the same statements again with other element counts."""
    first = _rows(9, ["u1", None], now_ms())
    assert _group(store, first)[0] == 1
    seen: dict[str, Row | None] = {}

    def run(txn: Txn) -> int | None:
        for row in [*first, Row("things", "absent", {}, 1, 1, None)]:
            seen[row.id] = txn.get(row.entity, row.id)
        return None

    store.write_group([(r.entity, r.id) for r in first] + [("things", "absent")], run)
    assert seen == {**{r.id: r for r in first}, "absent": None}
    assert store.read(lambda txn: txn.get_many("things", [first[0].id, "absent"])) == {
        first[0].id: first[0]
    }


def test_the_transactor_commits_a_held_group_of_user_and_admin_creates(store):
    """Through the transactor, as requests come: a group of creates by a user and the
    admin (no owner), each answered with its own tx, every row and log entry stored."""
    user = Principal(user_id="u-1")
    ref = Transactor.start(store, True, 256)
    try:
        with writes_held(store):
            futures = [
                submit(
                    ref,
                    [Op("create", "notes", f"n{i}", {"text": AWKWARD[i % len(AWKWARD)]})],
                    ADMIN if i % 3 == 0 else user,
                )
                for i in range(12)
            ]
        outcomes = [f.result(timeout=30) for f in futures]
    finally:
        ref.stop()
    assert [o.tx for o in outcomes] == list(range(1, 13))
    rows = store.read(lambda txn: txn.get_many("notes", [f"n{i}" for i in range(12)]))
    for i in range(12):
        row = rows[f"n{i}"]
        assert row.data == {"text": AWKWARD[i % len(AWKWARD)]}
        assert row.user_id == (None if i % 3 == 0 else "u-1")
    log = store.read(lambda txn: txn.execute("SELECT count(*) FROM ab_tx").fetchone()[0])
    assert log == 12
