"""Optimistic writes: mutations not yet reflected in a live result are applied on top
of it, so the app sees them at once. A mutation stays on a result until that result
has a frame at or past the mutation's tx (the server's own rows then show it), and
is dropped at once when the server refuses it (rolled back)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .order import Row
from .result import ResultSet
from .where import matches

SYSTEM = ("id", "createdAt", "updatedAt", "userId")


@dataclass(slots=True)
class Pending:
    key: str
    ops: list[dict[str, Any]]
    tx: int | None = None
    """The commit's tx, once acknowledged."""

    def entities(self) -> set[str]:
        return {op.get("entity", "") for op in self.ops}

    def applies_to(self, entity: str, tx: int | None) -> bool:
        """Whether it still overlays a result of `entity` that is current as of `tx`."""
        if self.tx is not None and tx is not None and tx >= self.tx:
            return False
        return any(op.get("entity") == entity for op in self.ops)


class Optimistic:
    """The mutations in flight, in submission order; listeners hear every change."""

    def __init__(self) -> None:
        self.pending: list[Pending] = []
        self.user_id: str | None = None
        self._listeners: list[Callable[[set[str]], None]] = []

    def on_change(self, callback: Callable[[set[str]], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def add(self, key: str, ops: list[dict[str, Any]]) -> None:
        if any(p.key == key for p in self.pending):
            return
        pending = Pending(key, ops)
        self.pending.append(pending)
        self._changed(pending.entities())

    def acknowledged(self, key: str, tx: int) -> None:
        for p in self.pending:
            if p.key == key:
                p.tx = tx
                self._changed(p.entities())

    def rolled_back(self, key: str) -> None:
        for p in list(self.pending):
            if p.key == key:
                self.pending.remove(p)
                self._changed(p.entities())

    def retire(self, still_needed: Callable[[Pending], bool]) -> None:
        """Forget acknowledged mutations no live result needs any more."""
        self.pending = [p for p in self.pending if p.tx is None or still_needed(p)]

    def _changed(self, entities: set[str]) -> None:
        for callback in list(self._listeners):
            callback(entities)

    def overlay(self, entity: str, base: ResultSet, tx: int | None) -> list[Row]:
        """`base`'s rows with the pending mutations on `entity` applied, in order."""
        ops = [
            op
            for p in self.pending
            if p.applies_to(entity, tx)
            for op in p.ops
            if op.get("entity") == entity
        ]
        if not ops:
            return base.view()
        rows = dict(base.rows)
        now = int(time.time() * 1000)
        for op in ops:
            rid, kind = op.get("id"), op.get("op")
            old = rows.get(rid)
            if kind == "delete":
                rows.pop(rid, None)
                continue
            data = op.get("data") or {}
            if kind == "merge":
                if old is None:
                    continue  # not in this result: whether it enters is the server's call
                new = _merge(old, data)
            else:
                new = _merge({}, data)
                new["createdAt"] = old["createdAt"] if old and "createdAt" in old else now
                new["userId"] = old.get("userId") if old else self.user_id
                if old and "updatedAt" in old:
                    new["updatedAt"] = old["updatedAt"]
            # updatedAt stays the server's (none for a new row): never a made-up version.
            new["id"] = rid
            if matches(base.where, new):
                rows[rid] = _project(new, base.fields)
            else:
                rows.pop(rid, None)
        keys = base.keys

        def key(row: Row) -> Any:
            rid = row["id"]
            return keys[rid] if base.rows.get(rid) is row else base.key(row)

        ordered = sorted(rows.values(), key=key)
        return ordered[: base.limit] if base.limit is not None else ordered


def _merge(row: Row, patch: dict[str, Any]) -> Row:
    """RFC 7386 merge as the server does it; system fields are the server's."""
    out = dict(row)
    for name, value in patch.items():
        if name in SYSTEM:
            continue
        if value is None:
            out.pop(name, None)
        elif isinstance(value, dict) and isinstance(out.get(name), dict):
            out[name] = _merge(out[name], value)
        else:
            out[name] = value
    return out


def _project(row: Row, fields: list[str] | None) -> Row:
    if fields is None:
        return row
    return {k: v for k, v in row.items() if k == "id" or k in fields}
