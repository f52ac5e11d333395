"""Live-query diffs, pure: no I/O, no actors, no clock.

A flat entity query (no links, no `$offset`, no `$after`) is kept as a `Window`: the
first `$limit` readable matching rows, in order, and whether more rows match beyond
it. `Window.apply` folds one transaction's changes into it with the Python matcher
(which agrees with the SQL), so a diff costs no database round trip, except when rows
left a full window and unknown rows beyond it must be read to refill it; then it
answers None and the caller re-runs the query and diffs the two results with `diff`.

Diff semantics (a client applies `removed`, then `added`, then `updated`):
`added` full rows that entered the result; `updated` the id and changed fields of
rows that stay (a field that disappeared as null); `removed` ids of rows that left.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any

from store.mutations import Change
from store.query.ast import EntityQuery, Node, OrderKey
from store.query.execute import DEFAULT_ORDER
from store.query.match import compare, matches

Row = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Diff:
    """One entity's change to a result between two txs."""

    entity: str
    added: list[Row]
    updated: list[Row]
    removed: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def body(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "removed": self.removed}


def is_flat(eq: EntityQuery) -> bool:
    """Whether `eq` can be diffed in Python (otherwise the query is re-run per change)."""
    return not eq.links and eq.offset == 0 and eq.after is None


def project(row: Row, fields: tuple[str, ...] | None) -> Row:
    """The row as the client sees it: `$fields` (and id) only, as the SQL path does."""
    if fields is None:
        return row
    return {k: v for k, v in row.items() if k == "id" or k in fields}


def changed_fields(old: Row, new: Row) -> Row | None:
    """`{id, field: new value...}` for what differs (a removed field as None), or None."""
    out: Row = {k: v for k, v in new.items() if k not in old or old[k] != v}
    for k in old:
        if k not in new:
            out[k] = None
    if not out:
        return None
    return {"id": new["id"], **out}


def diff(entity: str, old: list[Row], new: list[Row]) -> Diff:
    """The diff that turns result `old` into result `new` (rows already projected)."""
    before = {r["id"]: r for r in old}
    after_ids = {r["id"] for r in new}
    added: list[Row] = []
    updated: list[Row] = []
    for row in new:
        prior = before.get(row["id"])
        if prior is None:
            added.append(row)
        elif prior is not row:
            fields = changed_fields(prior, row)
            if fields is not None:
                updated.append(fields)
    removed = [r["id"] for r in old if r["id"] not in after_ids]
    return Diff(entity, added, updated, removed)


def compose(first: Diff, second: Diff) -> Diff:
    """One diff with the effect of `first` then `second` (to coalesce for slow clients)."""
    removed = list(first.removed)
    removed_set = set(removed)
    added = {r["id"]: r for r in first.added}
    updated = {r["id"]: r for r in first.updated}
    for rid in second.removed:
        if rid in added:
            del added[rid]
            if rid not in removed_set:
                continue  # entered and left within the span: the client never saw it
        updated.pop(rid, None)
        if rid not in removed_set:
            removed.append(rid)
            removed_set.add(rid)
    for row in second.added:
        updated.pop(row["id"], None)
        added[row["id"]] = row
    for fields in second.updated:
        rid = fields["id"]
        if rid in added:
            # The client applies `updated` as assignments, null included: so does this.
            added[rid] = {**added[rid], **fields}
        else:
            updated[rid] = {**updated.get(rid, {}), **fields}
    return Diff(first.entity, list(added.values()), list(updated.values()), removed)


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """The first `limit` rows (full wire rows, in order) matching `where`, which
    already includes the reader's permission rule, and whether more rows match."""

    entity: str
    where: Node
    order: tuple[OrderKey, ...]
    limit: int
    fields: tuple[str, ...] | None
    rows: tuple[Row, ...]
    more: bool
    strip: Callable[[Row], Row] | None = None
    """Removes the fields the reader may not see (field rules); rows stay whole here."""

    @classmethod
    def of(
        cls,
        eq: EntityQuery,
        where: Node,
        rows: Iterable[Row],
        more: bool,
        strip: Callable[[Row], Row] | None = None,
    ) -> Window:
        """The window of flat query `eq` read as `rows` (restricted by `where`)."""
        return cls(
            eq.entity,
            where,
            eq.order or DEFAULT_ORDER,
            eq.limit,
            eq.fields,
            tuple(rows),
            more,
            strip,
        )

    def visible(self) -> list[Row]:
        """The rows as the client sees them."""
        if self.strip is not None:
            return [project(self.strip(r), self.fields) for r in self.rows]
        return [project(r, self.fields) for r in self.rows]

    def apply(self, changes: Iterable[Change]) -> tuple[Window, Diff] | None:
        """The window after `changes` (this entity's, in order) and the diff to it, or
        None when rows beyond the window, unknown here, may now belong in it."""
        key = _sort_key(self.order)
        candidates = {r["id"]: r for r in self.rows}
        touched = False
        for change in changes:
            if change.after is not None and matches(self.where, change.after):
                candidates[change.id] = change.after
                touched = True
            elif candidates.pop(change.id, None) is not None:
                touched = True
        if not touched:  # most change sets, for most readers: nothing to sort
            return self, Diff(self.entity, [], [], [])
        ordered = sorted(candidates.values(), key=key)
        rows = ordered[: self.limit]
        if self.more:
            # Unknown matching rows all sort after the old last row: the new window is
            # exact only if it is full and ends no later than that row did.
            if len(rows) < self.limit or not self.rows:
                return None
            if key(rows[-1]) > key(self.rows[-1]):
                return None
        more = self.more or len(ordered) > self.limit
        window = dataclasses.replace(self, rows=tuple(rows), more=more)
        return window, diff(self.entity, self.visible(), window.visible())


def sort_rows(eq: EntityQuery, rows: Iterable[Row]) -> list[Row]:
    """`rows` in the order of `eq` (its `$order`, then id), as the SQL sorts them."""
    return sorted(rows, key=_sort_key(eq.order or DEFAULT_ORDER))


@functools.lru_cache(maxsize=256)
def _sort_key(order: tuple[OrderKey, ...]) -> Callable[[Row], Any]:
    return functools.cmp_to_key(compare(order))
