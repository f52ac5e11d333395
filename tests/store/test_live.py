"""store.query.live: windows, diffs and coalescing, pure (no database)."""

from __future__ import annotations

from store.mutations import Change
from store.query.ast import Cmp, EntityQuery, OrderKey
from store.query.live import Diff, Window, compose, diff

EQ = EntityQuery("t", order=(OrderKey(("n",)),), limit=2)
WHERE = Cmp(("ok",), "eq", True)


def row(id: str, n: int, ok: bool = True, **extra) -> dict:
    return {"id": id, "n": n, "ok": ok, **extra}


def window(*rows: dict, more: bool = False) -> Window:
    return Window.of(EQ, WHERE, rows, more)


def upsert(r: dict, before: dict | None = None) -> Change:
    return Change("t", r["id"], "update" if before else "insert", before, r)


def test_insert_enters_and_pushes_last_row_out():
    w = window(row("a", 1), row("b", 3))
    new, d = w.apply([upsert(row("c", 2))])
    assert [r["id"] for r in new.rows] == ["a", "c"] and new.more
    assert (d.added, d.removed, d.updated) == ([row("c", 2)], ["b"], [])


def test_update_out_of_where_and_refill_needed():
    w = window(row("a", 1), row("b", 3), more=True)
    assert w.apply([upsert(row("a", 1, ok=False), row("a", 1))]) is None
    small = window(row("a", 1), row("b", 3))
    new, d = small.apply([upsert(row("a", 1, ok=False), row("a", 1))])
    assert d.removed == ["a"] and [r["id"] for r in new.rows] == ["b"]


def test_update_in_place_reports_changed_fields_and_nulls():
    w = window(row("a", 1, x=1), row("b", 3))
    _, d = w.apply([upsert(row("a", 1, y=2), row("a", 1, x=1))])
    assert d.updated == [{"id": "a", "y": 2, "x": None}]


def test_row_beyond_full_window_is_ignored_and_unrelated_changes_cost_nothing():
    w = window(row("a", 1), row("b", 3), more=True)
    new, d = w.apply([upsert(row("z", 9))])
    assert not d and new.rows == w.rows
    same, d = w.apply([Change("t", "q", "delete", row("q", 5, ok=False), None)])
    assert same is w and not d


def test_delete_from_window():
    w = window(row("a", 1), row("b", 3))
    new, d = w.apply([Change("t", "a", "delete", row("a", 1), None)])
    assert d.removed == ["a"] and [r["id"] for r in new.rows] == ["b"]


def test_diff_of_two_results():
    d = diff("t", [row("a", 1), row("b", 2)], [row("b", 2, x=1), row("c", 3)])
    assert d.removed == ["a"] and d.added == [row("c", 3)] and d.updated == [{"id": "b", "x": 1}]


def test_compose_equals_applying_in_turn():
    first = Diff("t", [row("c", 3)], [{"id": "a", "x": 1}], ["b"])
    second = Diff("t", [row("b", 2)], [{"id": "c", "n": 4}, {"id": "a", "y": 2}], ["d"])
    both = compose(first, second)
    assert both.removed == ["b", "d"]
    assert {r["id"]: r for r in both.added} == {"c": row("c", 4), "b": row("b", 2)}
    assert both.updated == [{"id": "a", "x": 1, "y": 2}]
    gone = compose(Diff("t", [row("e", 1)], [], []), Diff("t", [], [], ["e"]))
    assert not gone  # entered and left within the span
