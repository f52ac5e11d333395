"""The accounts service: the auth rules in one place, awaited from handlers.

It owns the bcrypt pool (AUTH_THREADS), the signing keys and the account SQL, and
keeps all of it off the IOLoop: bcrypt runs on the auth pool, SQL and RSA signing
on the read pool. Errors are raised as `actorbase.errors` types; messages never
say whether an email has an account.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import time
import unicodedata
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from actorbase.errors import (
    AccountLocked,
    InvalidArgument,
    InvalidCredentials,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from config.settings import Settings
from store import totp
from store.accounts import (
    Accounts,
    ChallengeFailure,
    Grant,
    Lifetimes,
    Locked,
    Lockout,
    Reused,
    SessionInfo,
    User,
)
from store.base import Store, now_ms
from store.passwords import Hasher, check_policy, password_arg
from store.principal import Principal
from store.readpool import ReadPool
from store.session_cache import SessionCache
from store.signing_keys import SigningKeys
from store.tokens import digest, kid_of

T = TypeVar("T")

MAX_EMAIL = 254
LOCKED_MESSAGE = "This account is locked; an administrator can unlock it"
"""Told only to a caller who gave the right password: it reveals nothing more."""
_EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f.]+(\.[^@\s\x00-\x1f.]+)+$")


@dataclasses.dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str = dataclasses.field(repr=False)
    refresh_token: str = dataclasses.field(repr=False)
    user_id: str = ""
    """Whose they are: the access log names the user a sign-in or refresh is for."""

    def to_wire(self) -> dict[str, str]:
        return {"accessToken": self.access_token, "refreshToken": self.refresh_token}


def email_arg(value: Any, *, strict: bool) -> str:
    """An email from a request, NFKC-normalized (so a fullwidth or otherwise compatible
    spelling is the same account); `strict` (sign-up) also checks its form."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument("email: must be a non-empty string")
    value = unicodedata.normalize("NFKC", value)
    if len(value) > MAX_EMAIL or (strict and not _EMAIL_RE.fullmatch(value)):
        raise InvalidArgument("email: is not a valid email address")
    return value


class AuthService:
    """Sign-up, sign-in, MFA, tokens and sessions. Coroutines run on the IOLoop and
    hand every blocking step to a pool."""

    def __init__(
        self,
        settings: Settings,
        accounts: Accounts,
        hasher: Hasher,
        keys: SigningKeys,
        reads: ReadPool,
    ) -> None:
        self.settings = settings
        self.accounts = accounts
        self.hasher = hasher
        self.keys = keys
        self._reads = reads
        self.live = SessionCache()
        """Verified tokens and live sessions of this process (the hub keeps it current)."""
        self.revoked: collections.Counter[str] = collections.Counter()
        """Sessions this process ended, by why (IOLoop only; /metrics reads it)."""
        self._lockout = Lockout(
            settings.lockout_threshold,
            settings.lockout_window * 1000,
            settings.lockout_seconds * 1000,
        )

    @classmethod
    def build(
        cls, settings: Settings, store: Store, reads: ReadPool, keys: SigningKeys
    ) -> AuthService:
        """Start the bcrypt pool. Blocks."""
        lifetimes = Lifetimes(
            settings.refresh_idle_ttl * 1000, settings.refresh_absolute_ttl * 1000
        )
        hasher = Hasher(settings.bcrypt_rounds, settings.auth_threads)
        return cls(settings, Accounts(store, lifetimes), hasher, keys, reads)

    def shutdown(self) -> None:
        self.hasher.shutdown()

    async def sweep(self) -> None:
        """Delete spent sign-in counters and expired MFA challenges (store.accounts)."""
        await self._db(self.accounts.sweep, now_ms(), self._lockout)

    def _ended(self, reason: str, sessions: Collection[str]) -> None:
        """`sessions` were revoked here: refused by this process from now on (by the
        others within SESSION_CHECK_INTERVAL), and counted under `reason`."""
        self.live.end(sessions)
        if sessions:
            self.revoked[reason] += len(sessions)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._reads.call(lambda: fn(*args))

    def _tokens(self, grant: Grant) -> Tokens:
        """Sign an access token for `grant` with the newest key (on a pool thread: RSA
        signing costs ~1 ms)."""
        access = self.keys.jwt.newest.sign(
            user_id=grant.user.id,
            session_id=grant.session_id,
            role=grant.user.role,
            claims=grant.user.claims,
            now=int(time.time()),
            ttl=self.settings.access_token_ttl,
        )
        return Tokens(access, grant.refresh_token, grant.user.id)

    # -- tokens --------------------------------------------------------------------------

    async def verify(self, token: str, *, fresh: bool = False) -> Principal:
        """The user an access token speaks for, if its session is still live.

        The signature is checked once per token and liveness comes from the
        SessionCache; `fresh` reads the session from the database anyway (the account
        endpoints: a session revoked by another process is refused there at once)."""
        principal = self.live.principal(token)
        if principal is None:
            key = await self.keys.find(self.keys.jwt, kid_of(token))
            if key is None:
                raise Unauthenticated("Invalid token")
            payload = key.verify(token)
            principal = Principal(
                user_id=payload["sub"],
                role=payload["role"],
                claims=payload["claims"],
                session_id=payload["sid"],
                expires_at=float(payload["exp"]),
            )
            self.live.verified(token, principal)
        user_id, session_id = _uid(principal), _sid(principal)
        live = None if fresh else self.live.live(session_id, user_id, now_ms())
        if live is None:
            epoch = self.live.epoch
            expires = await self._db(self.accounts.session_expiry, session_id, user_id, now_ms())
            self.live.confirm(session_id, user_id, expires, epoch)
            live = expires is not None
        if not live:
            raise Unauthenticated("Session has ended")
        return principal

    def jwks(self) -> dict[str, Any]:
        """Every key a token still valid may be signed with, newest first."""
        return {"keys": [key.jwk for key in self.keys.jwt.all()]}

    async def refresh(self, refresh_token: Any) -> Tokens:
        if not isinstance(refresh_token, str) or not refresh_token:
            raise InvalidArgument("refreshToken: must be a non-empty string")

        def rotate() -> Tokens | Reused | None:
            grant = self.accounts.rotate(refresh_token, now_ms())
            return grant if not isinstance(grant, Grant) else self._tokens(grant)

        tokens = await self._db(rotate)
        if isinstance(tokens, Reused):
            self._ended("reuse", [tokens.session_id])
        if not isinstance(tokens, Tokens):
            raise Unauthenticated("Invalid or expired refresh token")
        return tokens

    # -- sign-up and sign-in -------------------------------------------------------------

    async def signup(self, email: Any, password: Any, device: str, ip: str) -> tuple[User, Tokens]:
        address = email_arg(email, strict=True)
        hashed = await self.hasher.hash(check_policy(password))

        def create() -> tuple[User, Tokens]:
            grant = self.accounts.create_user(address, hashed, device, ip, now_ms())
            return grant.user, self._tokens(grant)

        return await self._db(create)

    async def signin(self, email: Any, password: Any, device: str, ip: str) -> Tokens | str:
        """Tokens, or an mfaToken when the account has MFA on.

        Unknown emails and wrong passwords fail alike, in time too (a dummy hash is
        checked), and both count towards the email's lockout."""
        address = email_arg(email, strict=False).lower()
        secret = password_arg(password)
        user = await self.check_password(address, secret, None)
        if user.locked_at is not None:
            raise PermissionDenied(LOCKED_MESSAGE)
        if user.mfa_enabled:
            return await self._db(self.accounts.create_challenge, user.id, device, ip, now_ms())

        def open_session() -> Tokens:
            grant = self.accounts.open_session(user.id, device, ip, now_ms())
            if grant is None:
                raise PermissionDenied(LOCKED_MESSAGE)
            return self._tokens(grant)

        return await self._db(open_session)

    async def check_password(self, email_lower: str, password: str, user_id: str | None) -> User:
        """The account of `email_lower` if `password` is right for it (and, if given,
        it is `user_id`); else raise. Counts the attempt for lockout; a right one
        clears the count, except with MFA on, where only the second factor does."""
        retry_after = await self._db(
            self.accounts.begin_attempt, email_lower, now_ms(), self._lockout
        )
        if retry_after:
            raise AccountLocked(retry_after)
        user = await self._db(self.accounts.user_by_email, email_lower)
        ok = await self.hasher.check(password, user.password_hash if user else None)
        if not ok or user is None or (user_id is not None and user.id != user_id):
            await self._db(self.accounts.fail_attempt, email_lower, now_ms(), self._lockout)
            raise InvalidCredentials()
        settle = self.accounts.settle_attempt if user.mfa_enabled else self.accounts.clear_attempts
        await self._db(settle, email_lower, now_ms())
        return user

    async def verify_mfa(self, mfa_token: Any, code: Any) -> Tokens:
        if not isinstance(mfa_token, str) or not mfa_token:
            raise InvalidArgument("mfaToken: must be a non-empty string")
        checked = _code_arg(code)

        def redeem() -> Tokens | ChallengeFailure | Locked:
            outcome = self.accounts.redeem_challenge(mfa_token, checked, now_ms(), self._lockout)
            return (
                outcome if isinstance(outcome, ChallengeFailure | Locked) else self._tokens(outcome)
            )

        outcome = await self._db(redeem)
        if isinstance(outcome, Locked):
            raise AccountLocked(outcome.retry_after)
        if outcome is ChallengeFailure.GONE:
            raise Unauthenticated("Invalid or expired MFA token")
        if outcome is ChallengeFailure.WRONG_CODE:
            raise InvalidCredentials("Invalid verification code")
        assert isinstance(outcome, Tokens)
        return outcome

    # -- the signed-in user --------------------------------------------------------------

    async def me(self, principal: Principal) -> User:
        user = await self._db(self.accounts.user_by_id, _uid(principal))
        if user is None:
            raise Unauthenticated("Session has ended")
        return user

    async def signout(self, principal: Principal) -> None:
        await self._db(self.accounts.revoke_session, _uid(principal), _sid(principal), now_ms())
        self._ended("signout", [_sid(principal)])

    async def sessions(self, principal: Principal) -> list[SessionInfo]:
        return await self._db(self.accounts.list_sessions, _uid(principal), now_ms())

    async def revoke_session(self, principal: Principal, session_id: str) -> None:
        if not await self._db(self.accounts.revoke_session, _uid(principal), session_id, now_ms()):
            raise NotFound(f"Session {session_id} not found")
        self._ended("session", [session_id])

    async def change_password(self, principal: Principal, current: Any, new: Any) -> None:
        """Check the current password (counted for lockout like a sign-in), set the
        new one, and revoke every other session."""
        user = await self.me(principal)
        await self.check_password(
            user.email.lower(), password_arg(current, "currentPassword"), user.id
        )
        hashed = await self.hasher.hash(check_policy(new, "newPassword"))
        ended = await self._db(
            self.accounts.set_password, user.id, hashed, _sid(principal), now_ms()
        )
        self._ended("password", ended)

    async def _reconfirm(self, principal: Principal, password: Any) -> User:
        """The signed-in user, once their password is checked again (counted for
        lockout like a sign-in): a stolen access token alone must not change MFA."""
        user = await self.me(principal)
        await self.check_password(user.email.lower(), password_arg(password), user.id)
        return user

    async def enroll_mfa(self, principal: Principal, password: Any) -> tuple[str, str]:
        """A new TOTP secret and its otpauth:// URL; MFA is on only after `enable_mfa`."""
        await self._reconfirm(principal, password)
        secret = totp.new_secret()
        user = await self._db(self.accounts.start_enrollment, _uid(principal), secret)
        return secret, totp.otpauth_url(secret, user.email)

    async def enable_mfa(self, principal: Principal, code: Any, password: Any) -> list[str]:
        """Turn MFA on and end the user's other sessions; returns the recovery codes
        (shown once, stored hashed)."""
        checked = _code_arg(code)
        await self._reconfirm(principal, password)
        codes = totp.new_recovery_codes()
        hashes = [digest(totp.normalize_recovery_code(c)) for c in codes]
        ended = await self._db(
            self.accounts.enable_mfa, _uid(principal), checked, hashes, _sid(principal), now_ms()
        )
        self._ended("mfa", ended)
        return codes

    async def disable_mfa(self, principal: Principal, code: Any, password: Any) -> None:
        """Turn MFA off; a wrong code counts towards the lockout like a wrong password."""
        checked = _code_arg(code)
        await self._reconfirm(principal, password)
        ok = await self._db(
            self.accounts.disable_mfa, _uid(principal), checked, now_ms(), self._lockout
        )
        if not ok:
            raise InvalidArgument("code: invalid or already used")

    # -- admin ---------------------------------------------------------------------------

    async def list_users(self, limit: int, offset: int, search: str) -> tuple[list[User], int]:
        return await self._db(self.accounts.list_users, limit, offset, search)

    async def user(self, user_id: str) -> tuple[User, int]:
        """A user and when their failed sign-ins' lockout ends (ms; 0: none)."""
        user = await self._db(self.accounts.user_by_id, user_id)
        if user is None:
            raise NotFound(f"User {user_id} not found")
        return user, await self._db(self.accounts.lockout_until, user.email.lower())

    async def set_locked(self, user_id: str, locked: bool) -> User:
        """Lock (every session ends, its sockets close) or unlock an account."""
        outcome = await self._db(self.accounts.set_locked, user_id, locked, now_ms())
        if outcome is None:
            raise NotFound(f"User {user_id} not found")
        user, ended = outcome
        self._ended("locked", ended)
        return user

    async def reset_mfa(self, user_id: str) -> User:
        user = await self._db(self.accounts.reset_mfa, user_id)
        if user is None:
            raise NotFound(f"User {user_id} not found")
        return user

    async def user_sessions(self, user_id: str) -> list[SessionInfo]:
        await self.user(user_id)
        return await self._db(self.accounts.list_sessions, user_id, now_ms())

    async def revoke_user_session(self, user_id: str, session_id: str) -> None:
        if not await self._db(self.accounts.revoke_session, user_id, session_id, now_ms()):
            raise NotFound(f"Session {session_id} not found")
        self._ended("admin", [session_id])

    async def revoke_user_sessions(self, user_id: str) -> int:
        await self.user(user_id)
        ended = await self._db(self.accounts.revoke_all, user_id, now_ms())
        self._ended("admin", ended)
        return len(ended)

    async def update_user(
        self, user_id: str, role: str | None, claims: dict[str, Any] | None
    ) -> User:
        user = await self._db(self.accounts.update_user, user_id, role, claims)
        if user is None:
            raise NotFound(f"User {user_id} not found")
        return user


def _code_arg(code: Any) -> str:
    if not isinstance(code, str) or not code or len(code) > 64:
        raise InvalidArgument("code: must be a non-empty string")
    return code


def _uid(principal: Principal) -> str:
    assert principal.user_id is not None
    return principal.user_id


def _sid(principal: Principal) -> str:
    assert principal.session_id is not None
    return principal.session_id
