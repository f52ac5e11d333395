"""This process's signing keys (access tokens, storage URLs), kept current.

Loaded at start, then reloaded off the loop every KEY_RELOAD_INTERVAL, and at once
when a token or URL names a key this process has not seen (another process, or
`actorbase keys rotate`, added it). That reload runs at most once per
RELOAD_MIN_SECONDS, so a forged kid cannot send every request to the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import secrets
import time
from typing import TypeVar

from config.secrets import Keep
from config.settings import Settings
from store import keyring
from store.base import Store, now_ms
from store.keyring import JWT, LEGACY_NAMES, URL, Keyed, KeyRing, StoredKey
from store.readpool import ReadPool
from store.storage.base import URL_MAX_SECONDS
from store.tokens import SigningKey, _generate_pem

logger = logging.getLogger(__name__)

RELOAD_MIN_SECONDS = 1.0
"""Least time between two reloads for an unknown kid."""

K = TypeVar("K", bound=Keyed)


@dataclasses.dataclass(frozen=True, slots=True)
class UrlKey:
    """An HMAC key for storage URLs; its `kid` (the version) is the URL's `v`."""

    kid: str
    secret: bytes = dataclasses.field(repr=False)


def make_secret(purpose: str) -> str:
    """A fresh key of `purpose`, as kept in the database."""
    return _generate_pem() if purpose == JWT else secrets.token_urlsafe(32)


def grace_ms(settings: Settings, purpose: str) -> int:
    """How long a superseded key keeps verifying: the longest a token (URL) it signed
    lives, plus one reload interval for a process that kept signing with it meanwhile."""
    lifetime = settings.access_token_ttl if purpose == JWT else URL_MAX_SECONDS
    return (lifetime + math.ceil(settings.key_reload_interval)) * 1000


def _url_key(stored: StoredKey) -> UrlKey:
    return UrlKey(str(stored.version), stored.secret.encode())


def _jwt_key(stored: StoredKey) -> SigningKey:
    return SigningKey(stored.secret)


class SigningKeys:
    """The JWT and URL key rings; a JWT_PRIVATE_KEY ring is fixed and never reloaded."""

    def __init__(self, store: Store, reads: ReadPool, settings: Settings) -> None:
        self._store = store
        self._reads = reads
        self.url: KeyRing[UrlKey] = KeyRing(_url_key, grace_ms(settings, URL))
        self.jwt: KeyRing[SigningKey] = KeyRing(_jwt_key, grace_ms(settings, JWT))
        self._managed: dict[str, KeyRing[UrlKey] | KeyRing[SigningKey]] = {URL: self.url}
        self._pending: asyncio.Future[None] | None = None
        self._quiet_until = 0.0

    @classmethod
    def open(cls, settings: Settings, store: Store, reads: ReadPool, keep: Keep) -> SigningKeys:
        """Load the keys, making version 0 of each the first time (`keep`). Blocks.
        Raises SystemExit with one line when JWT_PRIVATE_KEY is unusable."""
        keys = cls(store, reads, settings)
        keep(LEGACY_NAMES[URL], lambda: make_secret(URL))
        if settings.jwt_private_key:
            try:
                # A PEM pasted into a one-line config var arrives with literal "\\n"s.
                key = SigningKey(settings.jwt_private_key.replace("\\n", "\n"))
            except ValueError as exc:
                raise SystemExit(f"actorbase: JWT_PRIVATE_KEY: {exc}") from None
            keys.jwt = KeyRing.fixed(key)
        else:
            keep(LEGACY_NAMES[JWT], lambda: make_secret(JWT))
            keys._managed[JWT] = keys.jwt
        keys.load()
        return keys

    def load(self) -> None:
        """Read the managed rings from the database. Blocks: call it on a pool thread."""
        found = self._store.read(
            lambda txn: {purpose: keyring.stored(txn, purpose) for purpose in self._managed}
        )
        now = now_ms()
        for purpose, ring in self._managed.items():
            ring.load(found[purpose], now)

    async def reload(self) -> None:
        await self._reads.call(self.load)

    async def find(self, ring: KeyRing[K], kid: str) -> K | None:
        """The key `kid` names, reloading once if this process has not seen it."""
        key = ring.find(kid)
        if key is None and await self._reload_for_unknown():
            key = ring.find(kid)
        return key

    async def _reload_for_unknown(self) -> bool:
        """Reload unless one ran lately; callers meanwhile share the one in flight.
        False when none ran (too soon, or the database failed: logged)."""
        pending = self._pending
        if pending is None:
            now = time.monotonic()
            if now < self._quiet_until:
                return False
            self._quiet_until = now + RELOAD_MIN_SECONDS
            pending = self._pending = asyncio.ensure_future(self.reload())
            pending.add_done_callback(lambda _: setattr(self, "_pending", None))
        try:
            # Shielded: a caller that goes away does not cancel the others' reload.
            await asyncio.shield(pending)
        except Exception:
            logger.exception("could not reload the signing keys")
            return False
        return True
