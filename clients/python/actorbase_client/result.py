"""One entity's rows in a live result, kept in `$order` as q-init and q-diff frames
arrive: rows indexed by id, each row's sort key cached, so a diff costs its own size
plus one nearly-sorted Timsort (linear) rather than a rebuild of the result."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .order import Key, Row, key_function, order_fields


class ResultSet:
    def __init__(self, spec: dict[str, Any]) -> None:
        order = spec.get("$order")
        self.where: dict[str, Any] | None = spec.get("$where")
        self.limit: int | None = spec.get("$limit")
        self.fields: list[str] | None = spec.get("$fields")
        self.key = key_function(order)
        self._order_fields = order_fields(order)
        self.ids: list[str] = []
        self.rows: dict[str, Row] = {}
        self.keys: dict[str, Key] = {}

    def load(self, rows: Iterable[Row]) -> None:
        """Replace everything with a q-init's rows (already in the server's order)."""
        self.rows = {r["id"]: r for r in rows}
        self.ids = list(self.rows)
        self.keys = {rid: self.key(r) for rid, r in self.rows.items()}

    def apply(self, added: list[Row], updated: list[Row], removed: list[str]) -> None:
        """Apply a q-diff: removed, then added, then updated (null deletes a key).
        Rows are replaced, never changed in place, so results handed out stay as they
        were."""
        resort = False
        if removed:
            gone = {rid for rid in removed if rid in self.rows}
            for rid in gone:
                del self.rows[rid]
                del self.keys[rid]
            if gone:
                self.ids = [rid for rid in self.ids if rid not in gone]
        for row in added:
            rid = row["id"]
            if rid not in self.rows:
                self.ids.append(rid)
            self.rows[rid] = row
            self.keys[rid] = self.key(row)
            resort = True
        for fields in updated:
            rid = fields["id"]
            old = self.rows.get(rid)
            if old is None:
                continue
            new = dict(old)
            for name, value in fields.items():
                if value is None:
                    new.pop(name, None)
                else:
                    new[name] = value
            self.rows[rid] = new
            if not self._order_fields.isdisjoint(fields):
                self.keys[rid] = self.key(new)
                resort = True
        if resort:
            self.ids.sort(key=self.keys.__getitem__)

    def view(self) -> list[Row]:
        """The rows in order, as a new list."""
        rows = self.rows
        return [rows[rid] for rid in self.ids]
