"""Verified access tokens and live sessions, held in memory per server process.

Why: a signed-in user's request used to pay an RS256 verification on the loop and a
`SELECT ... FROM ab_sessions` on a pool thread (a round trip on PostgreSQL), every
time. A token string is checked once and its principal kept until its `exp`; a
session found live in the database is kept as live until its own expiry or until it
ends. Sessions end here at once when this process revokes them, and within
SESSION_CHECK_INTERVAL when another process does (the hub's periodic check reads the
sessions that ended lately and hands them to `end`).

Correctness rests on three rules. A session not known here is read from the database
before it counts as live. A database answer is cached only if no session ended while
it was being read (`epoch`), so a read that started before a revocation cannot bring
the session back. An ended session never comes back to life, so it is remembered as
ended (bounded) and refused without a database read.

Loop thread only: no locks.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from store.principal import Principal

MAX_TOKENS = 10_000
"""Verified tokens kept (least recently used dropped first)."""

MAX_SESSIONS = 10_000
"""Sessions kept as live, and as ended, each (least recently used dropped first)."""


class SessionCache:
    """Token string -> principal until `exp`; session id -> live until it ends."""

    __slots__ = (
        "_ended",
        "_listeners",
        "_live",
        "_max_sessions",
        "_max_tokens",
        "_tokens",
        "epoch",
    )

    def __init__(self, max_tokens: int = MAX_TOKENS, max_sessions: int = MAX_SESSIONS) -> None:
        self._max_tokens = max_tokens
        self._max_sessions = max_sessions
        # SHA-256 of the token (32 bytes, not ~700) -> (principal, exp in epoch seconds).
        self._tokens: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        # Session id -> (user id, session expiry in ms).
        self._live: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._listeners: list[Callable[[set[str]], None]] = []
        self.epoch = 0
        """Bumped whenever a session ends: a database read begun before then is stale."""

    # -- tokens --------------------------------------------------------------------------

    def principal(self, token: str) -> Principal | None:
        """The principal of a token verified before and not yet past its `exp`."""
        key = _key(token)
        hit = self._tokens.get(key)
        if hit is None:
            return None
        if hit[1] <= time.time():  # as PyJWT: a token is valid while now < exp
            del self._tokens[key]
            return None
        self._tokens.move_to_end(key)
        return hit[0]

    def verified(self, token: str, principal: Principal) -> None:
        """Keep a token whose signature and claims were just verified (until the
        principal's `expires_at`, the token's `exp`)."""
        assert principal.expires_at is not None
        self._tokens[_key(token)] = (principal, principal.expires_at)
        if len(self._tokens) > self._max_tokens:
            self._tokens.popitem(last=False)

    # -- sessions ------------------------------------------------------------------------

    def live(self, session_id: str, user_id: str, now_ms: int) -> bool | None:
        """True: live; False: ended; None: not known here, ask the database."""
        if session_id in self._ended:
            return False
        held = self._live.get(session_id)
        if held is None:
            return None
        if held[1] <= now_ms or held[0] != user_id:
            del self._live[session_id]
            return None  # the database has the last word (expired: it says so)
        self._live.move_to_end(session_id)
        return True

    def confirm(self, session_id: str, user_id: str, expires_at: int | None, epoch: int) -> None:
        """Record the database's answer for a session, read after `epoch` was taken."""
        if epoch != self.epoch:
            return  # a session ended meanwhile; maybe this one: do not cache
        if expires_at is None:
            self._remember_ended(session_id)
            return
        self._live[session_id] = (user_id, expires_at)
        self._live.move_to_end(session_id)
        if len(self._live) > self._max_sessions:
            self._live.popitem(last=False)

    def end(self, session_ids: Iterable[str]) -> None:
        """These sessions ended (revoked here, or seen ended by the hub's check)."""
        ended = set(session_ids)
        if not ended:
            return
        self.epoch += 1
        for session_id in ended:
            self._live.pop(session_id, None)
            self._remember_ended(session_id)
        for listener in self._listeners:
            listener(ended)

    def on_end(self, listener: Callable[[set[str]], None]) -> None:
        """Call `listener` with the ids each time sessions end (the hub closes sockets)."""
        self._listeners.append(listener)

    def _remember_ended(self, session_id: str) -> None:
        self._ended[session_id] = None
        self._ended.move_to_end(session_id)
        if len(self._ended) > self._max_sessions:
            self._ended.popitem(last=False)


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
