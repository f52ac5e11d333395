"""Accounts in SQL: users, sessions and their refresh-token families, MFA state,
sign-in attempt counters.

Every method blocks (callers run it on a pool thread) and is one transaction.
Races between server processes on one PostgreSQL are settled by the database:
conditional UPDATEs (``... WHERE used_at IS NULL``) and row locks taken by an
UPDATE before the row is read, never a read-then-write in Python. Where a failure
must still commit something (a counted attempt, a revoked family) the method
returns the failure instead of raising, since raising rolls back. Times are ms.
"""

from __future__ import annotations

import dataclasses
import enum
import secrets
from typing import Any

import ujson

from actorbase.errors import Conflict, InvalidArgument
from store import totp
from store.base import Store, Txn
from store.tokens import digest, opaque_token

MFA_CHALLENGE_MS = 5 * 60 * 1000
MFA_MAX_FAILURES = 5


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    role: str
    claims: dict[str, Any]
    mfa_enabled: bool
    created_at: int
    password_hash: str = dataclasses.field(repr=False)
    locked_at: int | None = None
    """When an admin locked the account (None: not locked)."""


_USER = "id, email, role, claims, mfa_enabled, created_at, password_hash, locked_at"


def _user(record: Any) -> User:
    return User(
        record[0],
        record[1],
        record[2],
        ujson.loads(record[3]),
        bool(record[4]),
        int(record[5]),
        record[6],
        None if record[7] is None else int(record[7]),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Lockout:
    """LOCKOUT_THRESHOLD failures within `window_ms` lock an email for `lock_ms`."""

    threshold: int
    window_ms: int
    lock_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Lifetimes:
    """Refresh idle timeout and session absolute lifetime."""

    idle_ms: int
    absolute_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """A live session, the refresh token just issued in it, and whose it is."""

    user: User
    session_id: str
    refresh_token: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Reused:
    """A refresh token presented twice: its session is now revoked."""

    session_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    device: str
    ip: str
    last_used_at: int


class ChallengeFailure(enum.Enum):
    GONE = "gone"
    """Unknown, used, expired or out of tries."""
    WRONG_CODE = "wrong_code"


@dataclasses.dataclass(frozen=True, slots=True)
class Locked:
    """The account is locked for `retry_after` more seconds."""

    retry_after: int


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class Accounts:
    """The accounts tables of one store."""

    def __init__(self, store: Store, lifetimes: Lifetimes) -> None:
        self.store = store
        self.lifetimes = lifetimes

    # -- users ---------------------------------------------------------------------------

    def create_user(self, email: str, password_hash: str, device: str, ip: str, now: int) -> Grant:
        """Insert a user and sign them in. A taken email (any case) is a CONFLICT."""
        try:
            with self.store.transaction() as txn:
                user = User(_new_id("usr_"), email, "user", {}, False, now, password_hash)
                txn.execute(
                    "INSERT INTO ab_users (id, email, email_lower, password_hash, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (user.id, email, email.lower(), password_hash, now),
                )
                return self._new_session(txn, user, device, ip, now)
        except self.store.integrity_errors:
            raise Conflict("An account with this email already exists") from None

    def user_by_email(self, email_lower: str) -> User | None:
        return self.store.read(
            lambda txn: _one_user(txn, "email_lower = ?", email_lower),
        )

    def user_by_id(self, user_id: str) -> User | None:
        return self.store.read(lambda txn: _one_user(txn, "id = ?", user_id))

    def list_users(self, limit: int, offset: int, search: str = "") -> tuple[list[User], int]:
        """A page of users by creation; `search` keeps those whose email contains it
        (any case) or whose id it is."""
        where, params = "", ()
        if search:
            pattern = "%" + _like_escape(search.lower()) + "%"
            where, params = "WHERE email_lower LIKE ? ESCAPE '\\' OR id = ?", (pattern, search)

        def read(txn: Txn) -> tuple[list[User], int]:
            records = txn.execute(
                f"SELECT {_USER} FROM ab_users {where} ORDER BY created_at, id LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            total = txn.execute(f"SELECT count(*) FROM ab_users {where}", params).fetchone()[0]
            return [_user(r) for r in records], int(total)

        return self.store.read(read)

    def lockout_until(self, email_lower: str) -> int:
        """When the failed sign-ins' lockout of an email ends (0: none)."""
        record = self.store.read(
            lambda txn: txn.execute(
                "SELECT locked_until FROM ab_signin_attempts WHERE email_lower = ?",
                (email_lower,),
            ).fetchone()
        )
        return 0 if record is None else int(record[0])

    def set_locked(self, user_id: str, locked: bool, now: int) -> tuple[User, set[str]] | None:
        """Lock the account (and end every session of it), or unlock it (and forget its
        failed sign-ins); returns the user and the sessions ended, None if no such user."""
        with self.store.transaction() as txn:
            if locked:
                txn.execute(
                    "UPDATE ab_users SET locked_at = ? WHERE id = ? AND locked_at IS NULL",
                    (now, user_id),
                )
                ended = _revoke_all(txn, user_id, now)
            else:
                txn.execute("UPDATE ab_users SET locked_at = NULL WHERE id = ?", (user_id,))
                txn.execute(
                    "DELETE FROM ab_signin_attempts WHERE email_lower = "
                    "(SELECT email_lower FROM ab_users WHERE id = ?)",
                    (user_id,),
                )
                ended = set()
            user = _one_user(txn, "id = ?", user_id)
            return None if user is None else (user, ended)

    def reset_mfa(self, user_id: str) -> User | None:
        """Turn MFA off for a user who lost their authenticator (an admin's call): the
        secret, recovery codes and pending sign-ins go. None if no such user."""
        with self.store.transaction() as txn:
            txn.execute(
                "UPDATE ab_users SET mfa_secret = NULL, mfa_pending_secret = NULL, "
                "mfa_enabled = 0, mfa_last_step = 0 WHERE id = ?",
                (user_id,),
            )
            txn.execute("DELETE FROM ab_recovery_codes WHERE user_id = ?", (user_id,))
            txn.execute("DELETE FROM ab_mfa_challenges WHERE user_id = ?", (user_id,))
            return _one_user(txn, "id = ?", user_id)

    def revoke_all(self, user_id: str, now: int) -> set[str]:
        """End every session of a user; returns those ended."""
        with self.store.transaction() as txn:
            return _revoke_all(txn, user_id, now)

    def update_user(
        self, user_id: str, role: str | None, claims: dict[str, Any] | None
    ) -> User | None:
        """Set role and/or claims; None if there is no such user."""
        with self.store.transaction() as txn:
            if role is not None:
                txn.execute("UPDATE ab_users SET role = ? WHERE id = ?", (role, user_id))
            if claims is not None:
                txn.execute(
                    "UPDATE ab_users SET claims = ? WHERE id = ?", (ujson.dumps(claims), user_id)
                )
            return _one_user(txn, "id = ?", user_id)

    def set_password(
        self, user_id: str, password_hash: str, keep_session: str, now: int
    ) -> set[str]:
        """Change the password and revoke every session but `keep_session`; returns the
        sessions revoked (for this process's SessionCache)."""
        with self.store.transaction() as txn:
            txn.execute(
                "UPDATE ab_users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )
            return _revoke_others(txn, user_id, keep_session, now)

    # -- sign-in attempts ----------------------------------------------------------------

    def begin_attempt(self, email_lower: str, now: int, policy: Lockout) -> int:
        """Count a sign-in attempt before its password is checked.

        Returns 0 to go ahead, else the seconds until the email's lock lifts.
        Counting first bounds the guesses even when many arrive at once: the ones
        beyond the threshold lock the email instead of reaching bcrypt.
        """
        with self.store.transaction() as txn:
            attempts, window_start, locked_until = _attempts_row(txn, email_lower, now)
            if locked_until > now:
                return _seconds(locked_until - now)
            if window_start <= now - policy.window_ms:
                attempts, window_start = 0, now
            attempts += 1
            if attempts > policy.threshold:
                txn.execute(
                    "UPDATE ab_signin_attempts SET attempts = 0, window_start = ?, "
                    "locked_until = ? WHERE email_lower = ?",
                    (now, now + policy.lock_ms, email_lower),
                )
                return _seconds(policy.lock_ms)
            txn.execute(
                "UPDATE ab_signin_attempts SET attempts = ?, window_start = ? "
                "WHERE email_lower = ?",
                (attempts, window_start, email_lower),
            )
            return 0

    def fail_attempt(self, email_lower: str, now: int, policy: Lockout) -> None:
        """The attempt failed: lock the email if it has used up its attempts."""
        with self.store.transaction() as txn:
            txn.execute(
                "UPDATE ab_signin_attempts SET attempts = 0, window_start = ?, locked_until = ? "
                "WHERE email_lower = ? AND attempts >= ? AND locked_until <= ?",
                (now, now + policy.lock_ms, email_lower, policy.threshold, now),
            )

    def clear_attempts(self, email_lower: str, now: int) -> None:
        """The attempt succeeded: forget the failures (a lock set meanwhile stays)."""
        with self.store.transaction() as txn:
            _clear(txn, email_lower, now)

    def settle_attempt(self, email_lower: str, now: int) -> None:
        """A right password of an account with MFA on: uncount this attempt only.
        Earlier failures, wrong MFA codes among them, stay until a sign-in completes
        with its second factor (else the password would buy unlimited code guesses)."""
        with self.store.transaction() as txn:
            txn.execute(
                "UPDATE ab_signin_attempts SET attempts = attempts - 1 "
                "WHERE email_lower = ? AND attempts > 0 AND locked_until <= ?",
                (email_lower, now),
            )

    def sweep(self, now: int, policy: Lockout) -> None:
        """Delete what can never count again: sign-in counters whose window has passed
        and that hold no lock (unknown emails included: each failure leaves one), and
        expired MFA challenges."""
        with self.store.transaction() as txn:
            txn.execute(
                "DELETE FROM ab_signin_attempts WHERE locked_until <= ? AND window_start <= ?",
                (now, now - policy.window_ms),
            )
            txn.execute("DELETE FROM ab_mfa_challenges WHERE expires_at <= ?", (now,))

    def prune_sessions(self, ended_before: int, limit: int) -> int:
        """Delete up to `limit` sessions that ended (revoked, or past their absolute
        expiry; an idle one reaches it too) before `ended_before`, and with them their
        refresh tokens (ON DELETE CASCADE); returns how many. The caller keeps ended
        sessions long enough for the session check's overlap and for refresh reuse to
        be told apart from an unknown token (actors.retention); a live session keeps
        every token it issued, so a reused one is always caught."""
        with self.store.transaction() as txn:
            return int(
                txn.execute(
                    "DELETE FROM ab_sessions WHERE id IN ("
                    "SELECT id FROM ab_sessions WHERE revoked_at < ? "
                    "UNION SELECT id FROM ab_sessions WHERE expires_at < ? LIMIT ?)",
                    (ended_before, ended_before, limit),
                ).rowcount
            )

    # -- sessions and refresh tokens -----------------------------------------------------

    def _new_session(self, txn: Txn, user: User, device: str, ip: str, now: int) -> Grant:
        session_id = _new_id("sess_")
        txn.execute(
            "INSERT INTO ab_sessions (id, user_id, device, ip, created_at, last_used_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session_id, user.id, device, ip, now, now, now + self.lifetimes.absolute_ms),
        )
        return Grant(user, session_id, _new_refresh(txn, session_id, now))

    def open_session(self, user_id: str, device: str, ip: str, now: int) -> Grant | None:
        """Sign a user in whose credentials were checked; None if they are gone or
        an admin locked them meanwhile."""
        with self.store.transaction() as txn:
            user = _one_user(txn, "id = ?", user_id)
            if user is None or user.locked_at is not None:
                return None
            return self._new_session(txn, user, device, ip, now)

    def rotate(self, refresh_token: str, now: int) -> Grant | Reused | None:
        """Trade a refresh token for a new one in the same session.

        A token already traded in means it was copied: the whole session (every
        token descended from that sign-in) is revoked, and Reused returned (the caller
        refuses it as it refuses None: an unknown, idle or expired token).
        """
        token_hash = digest(refresh_token)
        with self.store.transaction() as txn:
            taken = txn.execute(
                "UPDATE ab_refresh_tokens SET used_at = ? "
                "WHERE token_hash = ? AND used_at IS NULL RETURNING session_id",
                (now, token_hash),
            ).fetchone()
            if taken is None:
                reused = txn.execute(
                    "SELECT session_id FROM ab_refresh_tokens WHERE token_hash = ?",
                    (token_hash,),
                ).fetchone()
                if reused is None:
                    return None
                _revoke(txn, reused[0], now)
                return Reused(reused[0])
            session_id = taken[0]
            live = txn.execute(
                "UPDATE ab_sessions SET last_used_at = ? WHERE id = ? AND revoked_at IS NULL "
                "AND expires_at > ? AND last_used_at > ? RETURNING user_id",
                (now, session_id, now, now - self.lifetimes.idle_ms),
            ).fetchone()
            if live is None:
                return None
            user = _one_user(txn, "id = ?", live[0])
            if user is None or user.locked_at is not None:
                return None
            return Grant(user, session_id, _new_refresh(txn, session_id, now))

    def session_expiry(self, session_id: str, user_id: str, now: int) -> int | None:
        """When an access token's session expires if it still stands (not signed out,
        revoked or expired), else None."""
        record = self.store.read(
            lambda txn: txn.execute(
                "SELECT expires_at FROM ab_sessions WHERE id = ? AND user_id = ? "
                "AND revoked_at IS NULL AND expires_at > ?",
                (session_id, user_id, now),
            ).fetchone()
        )
        return None if record is None else int(record[0])

    def ended_sessions(self, since: int, now: int) -> set[str]:
        """Sessions revoked or expired in [since, now], by any server process: open
        sockets re-check against this short list instead of looking up every session
        they hold (both columns are indexed)."""
        records = self.store.read(
            lambda txn: txn.execute(
                "SELECT id FROM ab_sessions WHERE revoked_at >= ? "
                "UNION SELECT id FROM ab_sessions WHERE expires_at >= ? AND expires_at <= ?",
                (since, since, now),
            ).fetchall()
        )
        return {r[0] for r in records}

    def list_sessions(self, user_id: str, now: int) -> list[SessionInfo]:
        records = self.store.read(
            lambda txn: txn.execute(
                "SELECT id, device, ip, last_used_at FROM ab_sessions WHERE user_id = ? "
                "AND revoked_at IS NULL AND expires_at > ? AND last_used_at > ? "
                "ORDER BY last_used_at DESC, id",
                (user_id, now, now - self.lifetimes.idle_ms),
            ).fetchall()
        )
        return [SessionInfo(r[0], r[1], r[2], int(r[3])) for r in records]

    def revoke_session(self, user_id: str, session_id: str, now: int) -> bool:
        """Revoke one of the user's own live sessions; False if there is none such."""
        with self.store.transaction() as txn:
            return (
                txn.execute(
                    "UPDATE ab_sessions SET revoked_at = ? "
                    "WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                    (now, session_id, user_id),
                ).rowcount
                == 1
            )

    # -- MFA -----------------------------------------------------------------------------

    def start_enrollment(self, user_id: str, secret: str) -> User:
        """Keep `secret` as pending until a code proves the authenticator has it."""
        with self.store.transaction() as txn:
            updated = txn.execute(
                "UPDATE ab_users SET mfa_pending_secret = ? WHERE id = ? AND mfa_enabled = 0",
                (secret, user_id),
            ).rowcount
            if updated != 1:
                raise Conflict("MFA is already enabled")
            user = _one_user(txn, "id = ?", user_id)
            assert user is not None
            return user

    def enable_mfa(
        self, user_id: str, code: str, recovery_hashes: list[str], keep_session: str, now: int
    ) -> set[str]:
        """Turn MFA on if `code` is right for the pending secret, and end every session
        but `keep_session`: those began without the second factor. Returns those ended."""
        with self.store.transaction() as txn:
            record = txn.execute(
                "SELECT mfa_pending_secret, mfa_enabled FROM ab_users WHERE id = ?", (user_id,)
            ).fetchone()
            if record is None or record[1]:
                raise Conflict("MFA is already enabled")
            if record[0] is None:
                raise InvalidArgument("Enroll first: POST /api/auth/mfa/enroll")
            if not _accept_code(txn, user_id, record[0], code, now, recovery=False):
                raise InvalidArgument("code: invalid or already used")
            txn.execute(
                "UPDATE ab_users SET mfa_secret = mfa_pending_secret, mfa_pending_secret = NULL, "
                "mfa_enabled = 1 WHERE id = ?",
                (user_id,),
            )
            txn.execute("DELETE FROM ab_recovery_codes WHERE user_id = ?", (user_id,))
            for code_hash in recovery_hashes:
                txn.execute(
                    "INSERT INTO ab_recovery_codes (user_id, code_hash) VALUES (?, ?)",
                    (user_id, code_hash),
                )
            return _revoke_others(txn, user_id, keep_session, now)

    def disable_mfa(self, user_id: str, code: str, now: int, policy: Lockout) -> bool:
        """Turn MFA off if `code` (TOTP or recovery) is right; a wrong one is False and
        counts towards the account's lockout, as at sign-in."""
        with self.store.transaction() as txn:
            record = txn.execute(
                "SELECT mfa_secret, mfa_enabled, email_lower FROM ab_users WHERE id = ?",
                (user_id,),
            ).fetchone()
            if record is None or not record[1]:
                raise Conflict("MFA is not enabled")
            if not _accept_code(txn, user_id, record[0], code, now, recovery=True):
                _count_failure(txn, record[2], now, policy)
                return False
            txn.execute(
                "UPDATE ab_users SET mfa_secret = NULL, mfa_pending_secret = NULL, "
                "mfa_enabled = 0, mfa_last_step = 0 WHERE id = ?",
                (user_id,),
            )
            txn.execute("DELETE FROM ab_recovery_codes WHERE user_id = ?", (user_id,))
            return True

    def create_challenge(self, user_id: str, device: str, ip: str, now: int) -> str:
        """A single-use mfaToken for a password-checked sign-in."""
        token = opaque_token()
        with self.store.transaction() as txn:
            txn.execute(
                "INSERT INTO ab_mfa_challenges (token_hash, user_id, device, ip, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (digest(token), user_id, device, ip, now + MFA_CHALLENGE_MS),
            )
        return token

    def redeem_challenge(
        self, mfa_token: str, code: str, now: int, policy: Lockout
    ) -> Grant | ChallengeFailure | Locked:
        """Finish an MFA sign-in: a right code (TOTP or recovery) opens the session,
        spends the token and clears the account's failures; the fifth wrong one spends
        the token too. Wrong codes count towards the account's lockout like wrong
        passwords, and a locked account is refused before its code is looked at."""
        token_hash = digest(mfa_token)
        with self.store.transaction() as txn:
            challenge = txn.execute(
                "UPDATE ab_mfa_challenges SET failures = failures WHERE token_hash = ? "
                "RETURNING user_id, expires_at, failures, device, ip",
                (token_hash,),
            ).fetchone()
            if challenge is None:
                return ChallengeFailure.GONE
            user_id, expires_at, failures, device, ip = challenge
            record = txn.execute(
                "SELECT mfa_secret, email_lower FROM ab_users "
                "WHERE id = ? AND mfa_enabled = 1 AND locked_at IS NULL",
                (user_id,),
            ).fetchone()
            if expires_at <= now or failures >= MFA_MAX_FAILURES or record is None:
                txn.execute("DELETE FROM ab_mfa_challenges WHERE token_hash = ?", (token_hash,))
                return ChallengeFailure.GONE
            secret, email_lower = record
            locked_until = _attempts_row(txn, email_lower, now)[2]
            if locked_until > now:
                return Locked(_seconds(locked_until - now))
            if _accept_code(txn, user_id, secret, code, now, recovery=True):
                txn.execute("DELETE FROM ab_mfa_challenges WHERE token_hash = ?", (token_hash,))
                _clear(txn, email_lower, now)
                user = _one_user(txn, "id = ?", user_id)
                assert user is not None
                return self._new_session(txn, user, device, ip, now)
            _count_failure(txn, email_lower, now, policy)
            if failures + 1 >= MFA_MAX_FAILURES:
                txn.execute("DELETE FROM ab_mfa_challenges WHERE token_hash = ?", (token_hash,))
            else:
                txn.execute(
                    "UPDATE ab_mfa_challenges SET failures = ? WHERE token_hash = ?",
                    (failures + 1, token_hash),
                )
            return ChallengeFailure.WRONG_CODE


def _attempts_row(txn: Txn, email_lower: str, now: int) -> tuple[int, int, int]:
    """An email's (attempts, window_start, locked_until), created if missing, with its
    row locked: the no-op UPDATE takes the lock before the row is read, so attempts
    from several processes are counted one at a time."""
    txn.execute(
        "INSERT INTO ab_signin_attempts (email_lower, attempts, window_start, "
        "locked_until) VALUES (?, 0, ?, 0) ON CONFLICT (email_lower) DO NOTHING",
        (email_lower, now),
    )
    attempts, window_start, locked_until = txn.execute(
        "UPDATE ab_signin_attempts SET attempts = attempts WHERE email_lower = ? "
        "RETURNING attempts, window_start, locked_until",
        (email_lower,),
    ).fetchone()
    return int(attempts), int(window_start), int(locked_until)


def _count_failure(txn: Txn, email_lower: str, now: int, policy: Lockout) -> None:
    """One more failure for the email (a wrong MFA code), locking it at the threshold,
    as a wrong password's begin_attempt + fail_attempt do."""
    attempts, window_start, locked_until = _attempts_row(txn, email_lower, now)
    if locked_until > now:
        return
    if window_start <= now - policy.window_ms:
        attempts, window_start = 0, now
    attempts += 1
    if attempts >= policy.threshold:
        txn.execute(
            "UPDATE ab_signin_attempts SET attempts = 0, window_start = ?, locked_until = ? "
            "WHERE email_lower = ?",
            (now, now + policy.lock_ms, email_lower),
        )
    else:
        txn.execute(
            "UPDATE ab_signin_attempts SET attempts = ?, window_start = ? WHERE email_lower = ?",
            (attempts, window_start, email_lower),
        )


def _clear(txn: Txn, email_lower: str, now: int) -> None:
    txn.execute(
        "DELETE FROM ab_signin_attempts WHERE email_lower = ? AND locked_until <= ?",
        (email_lower, now),
    )


def _one_user(txn: Txn, condition: str, value: str) -> User | None:
    record = txn.execute(f"SELECT {_USER} FROM ab_users WHERE {condition}", (value,)).fetchone()
    return None if record is None else _user(record)


def _new_refresh(txn: Txn, session_id: str, now: int) -> str:
    token = opaque_token()
    txn.execute(
        "INSERT INTO ab_refresh_tokens (token_hash, session_id, issued_at) VALUES (?, ?, ?)",
        (digest(token), session_id, now),
    )
    return token


def _revoke_others(txn: Txn, user_id: str, keep_session: str, now: int) -> set[str]:
    records = txn.execute(
        "UPDATE ab_sessions SET revoked_at = ? "
        "WHERE user_id = ? AND id <> ? AND revoked_at IS NULL RETURNING id",
        (now, user_id, keep_session),
    ).fetchall()
    return {r[0] for r in records}


def _revoke_all(txn: Txn, user_id: str, now: int) -> set[str]:
    records = txn.execute(
        "UPDATE ab_sessions SET revoked_at = ? "
        "WHERE user_id = ? AND revoked_at IS NULL RETURNING id",
        (now, user_id),
    ).fetchall()
    return {r[0] for r in records}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _revoke(txn: Txn, session_id: str, now: int) -> None:
    txn.execute(
        "UPDATE ab_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (now, session_id),
    )


def _accept_code(
    txn: Txn, user_id: str, secret: str, code: str, now: int, *, recovery: bool
) -> bool:
    """Spend `code`: a TOTP step newer than the last accepted one (so a code is never
    accepted twice), or, if `recovery`, an unused recovery code."""
    step = totp.matching_step(secret, code, now / 1000)
    if step is not None:
        return (
            txn.execute(
                "UPDATE ab_users SET mfa_last_step = ? WHERE id = ? AND mfa_last_step < ?",
                (step, user_id, step),
            ).rowcount
            == 1
        )
    if not recovery:
        return False
    return (
        txn.execute(
            "UPDATE ab_recovery_codes SET used_at = ? "
            "WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
            (now, user_id, digest(totp.normalize_recovery_code(code))),
        ).rowcount
        == 1
    )


def _seconds(ms: int) -> int:
    return max(1, -(-ms // 1000))
