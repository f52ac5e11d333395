"""Rotated signing keys: the table that keeps them and the set a process uses.

Two purposes: JWT keys sign access tokens, URL keys sign local storage URLs. Version 0
of each is the key it had before rotation existed, still kept in ab_secrets under its
old name, so tokens and URLs signed before an upgrade stay valid. `actorbase keys
rotate` adds versions 1, 2, … to ab_keys (migration 8). The newest version signs; an
older one still verifies until `grace` after its successor was added (the longest a
token or URL it signed can live, plus the time a process may take to hear of the
rotation), and is then dropped.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from store.base import Txn

JWT, URL = "jwt", "url"
LEGACY_NAMES = {JWT: "jwt_private_key.pem", URL: "storage_url_key"}
"""Where version 0 of each purpose lives in ab_secrets."""


@dataclasses.dataclass(frozen=True, slots=True)
class StoredKey:
    version: int
    secret: str = dataclasses.field(repr=False)
    created_at: int
    """Milliseconds since the epoch; 0 for version 0 (made before rotation existed)."""


def stored(txn: Txn, purpose: str) -> list[StoredKey]:
    """Every key of `purpose` in the database, oldest first."""
    legacy = txn.execute(
        "SELECT value FROM ab_secrets WHERE name = ?", (LEGACY_NAMES[purpose],)
    ).fetchone()
    rows = txn.execute(
        "SELECT version, secret, created_at FROM ab_keys WHERE purpose = ? ORDER BY version",
        (purpose,),
    ).fetchall()
    first = [StoredKey(0, str(legacy[0]), 0)] if legacy is not None else []
    return first + [StoredKey(int(v), str(s), int(c)) for v, s, c in rows]


def live(keys: list[StoredKey], now_ms: int, grace_ms: int) -> list[StoredKey]:
    """The newest key, and the older ones superseded less than `grace_ms` ago."""
    return [
        key
        for key, successor in zip(keys, [*keys[1:], None], strict=True)
        if successor is None or successor.created_at > now_ms - grace_ms
    ]


def add(txn: Txn, purpose: str, secret: str, now_ms: int) -> int:
    """Store `secret` as the newest key of `purpose`; returns its version. Two
    rotations at once on PostgreSQL: the later INSERT fails on the primary key."""
    (version,) = txn.execute(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM ab_keys WHERE purpose = ?", (purpose,)
    ).fetchone()
    txn.execute(
        "INSERT INTO ab_keys (purpose, version, secret, created_at) VALUES (?, ?, ?, ?)",
        (purpose, int(version), secret, now_ms),
    )
    return int(version)


def prune(txn: Txn, purpose: str, now_ms: int, grace_ms: int) -> list[int]:
    """Delete the rotated keys that can verify nothing any more; their versions.
    Version 0 stays in ab_secrets (unused once superseded)."""
    keys = stored(txn, purpose)
    kept = {key.version for key in live(keys, now_ms, grace_ms)}
    dead = [key.version for key in keys if key.version > 0 and key.version not in kept]
    for version in dead:
        txn.execute("DELETE FROM ab_keys WHERE purpose = ? AND version = ?", (purpose, version))
    return dead


class Keyed(Protocol):
    kid: str


K = TypeVar("K", bound=Keyed)


class KeyRing(Generic[K]):
    """The keys of one purpose this process verifies with (by `kid`) and the newest,
    which signs. `load` (any thread) swaps the whole set at once; readers on the loop
    or a pool thread see either the old set or the new one, never a mix."""

    def __init__(self, make: Callable[[StoredKey], K], grace_ms: int) -> None:
        self._make = make
        self.grace_ms = grace_ms
        self._made: dict[int, K] = {}
        self._state: tuple[K | None, dict[str, K]] = (None, {})
        """(newest, by kid), replaced as one."""
        self._lock = threading.Lock()

    @classmethod
    def fixed(cls, key: K) -> KeyRing[K]:
        """A ring of one configured key, which `load` is never given."""
        ring: KeyRing[K] = cls(lambda stored: key, 0)
        ring._state = (key, {key.kid: key})
        return ring

    def load(self, keys: list[StoredKey], now_ms: int) -> None:
        """Keep the live ones of `keys` (as `stored` returns them); each version is
        parsed once (an RSA key takes milliseconds)."""
        with self._lock:
            current = live(keys, now_ms, self.grace_ms)
            if not current:
                raise ValueError("no signing key in the database")
            made = {k.version: self._made.get(k.version) or self._make(k) for k in current}
            self._made = made
            by_kid = {key.kid: key for key in reversed(made.values())}
            self._state = (made[current[-1].version], by_kid)

    @property
    def newest(self) -> K:
        newest = self._state[0]
        assert newest is not None, "load the ring first"
        return newest

    def find(self, kid: str) -> K | None:
        return self._state[1].get(kid)

    def all(self) -> list[K]:
        """Newest first."""
        return list(self._state[1].values())
