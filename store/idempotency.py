"""Idempotency keys: a retried `/api/mutate` or WebSocket `mutate` gets the outcome of
the first commit instead of applying twice.

A key is chosen by the client (`Idempotency-Key` header, `idempotencyKey` field) and
scoped by the caller: a user's id, or ADMIN_SCOPE for the admin token, so two users'
keys never meet. It is remembered with a fingerprint of the ops it came with; the same
key with other ops is 409 CONFLICT.

The transactor looks the keys of a write group up after taking the tx counter (on
PostgreSQL the counter row stays locked until COMMIT, so no other process's writer
commits in between: two processes given the same key take turns, and the second
finds the first's record), and records each key in the savepoint of its mutation:
the rows and the key commit together or not at all. The primary key (user_id,
idem_key) backs this up. Only committed outcomes are kept: a mutation that failed
applied nothing, so its retry runs again. A record lives at least
IDEMPOTENCY_WINDOW seconds and is swept within SWEEP_INTERVAL after.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

import ujson

from actorbase.errors import Conflict, InvalidArgument
from store.base import Store, Txn, now_ms
from store.mutations import Op, Outcome
from store.principal import Principal

KEY_RE = re.compile(r"[A-Za-z0-9_.:~@+/=-]{1,128}")
"""A UUID, a ULID, a base64 digest or a `client:counter` fit."""

ADMIN_SCOPE = "$admin"
"""The admin token's keys (no user id starts with `$`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Key:
    """A mutation's idempotency key: whose, the key, and what it was sent with."""

    scope: str
    value: str
    fingerprint: str


def key_for(raw: Any, principal: Principal, ops: list[Op], where: str) -> Key | None:
    """The key a request carries (`where` names it in errors); None if it has none."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not KEY_RE.fullmatch(raw):
        raise InvalidArgument(f"{where}: 1-128 letters, digits or _ . : ~ @ + / = -")
    scope = ADMIN_SCOPE if principal.is_admin else principal.user_id
    assert scope is not None
    return Key(scope, raw, fingerprint(ops))


def fingerprint(ops: list[Op]) -> str:
    """The ops as parsed, so the same batch over REST and WebSocket matches."""
    canonical = ujson.dumps(
        [[op.kind, op.entity, op.id, op.data, op.owner] for op in ops],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class Recorded:
    """The keys of one write group as its transaction sees them: asked for with the
    tx counter's lock (`send`, the `ahead` of Store.write_group, so pipelined it costs
    no round trip of its own), then kept up to date as the group records its own (the
    same key twice in one group is a retry too)."""

    def __init__(self, keys: list[Key]) -> None:
        self._wanted = list(dict.fromkeys((k.scope, k.value) for k in keys))
        self._known: dict[tuple[str, str], tuple[str, int, list[Any]]] = {}
        self._cursor: Any = None

    def send(self, txn: Txn) -> None:
        """Ask for the group's keys; answered by the first `outcome`. Called again if
        the group runs again, forgetting what the rolled-back run recorded."""
        self._known = {}
        params = [part for pair in self._wanted for part in pair]
        where = " OR ".join(["(user_id = ? AND idem_key = ?)"] * len(self._wanted))
        self._cursor = txn.execute(
            f"SELECT user_id, idem_key, fingerprint, tx, results FROM ab_idempotency WHERE {where}",
            params,
        )
        if not txn.pipelined:
            self._read()

    def _read(self) -> None:
        if self._cursor is None:
            return
        for user_id, value, fp, tx, results in self._cursor.fetchall():
            self._known[(user_id, value)] = (fp, int(tx), ujson.loads(results))
        self._cursor = None

    def outcome(self, key: Key) -> Outcome | None:
        """The first commit's outcome for `key` (marked replayed), None if it has none;
        Conflict if it came with other ops."""
        self._read()
        found = self._known.get((key.scope, key.value))
        if found is None:
            return None
        fp, tx, results = found
        if fp != key.fingerprint:
            raise Conflict(f"Idempotency key {key.value!r} was used with other ops")
        return Outcome(tx, results, [], [], replayed=True)

    def record(self, txn: Txn, key: Key, outcome: Outcome) -> None:
        """Keep `outcome` under `key`, in the caller's savepoint: last in it, so nothing
        after can undo the rows but not this."""
        txn.executemany(
            "INSERT INTO ab_idempotency (user_id, idem_key, fingerprint, tx, results, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    key.scope,
                    key.value,
                    key.fingerprint,
                    outcome.tx,
                    ujson.dumps(outcome.results, ensure_ascii=False),
                    now_ms(),
                )
            ],
        )
        self._known[(key.scope, key.value)] = (key.fingerprint, outcome.tx, outcome.results)


def sweep(store: Store, window: float) -> None:
    """Forget keys older than `window` seconds (on a pool thread)."""
    with store.transaction() as txn:
        txn.execute(
            "DELETE FROM ab_idempotency WHERE created_at < ?", (now_ms() - int(window * 1000),)
        )
