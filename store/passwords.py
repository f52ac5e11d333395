"""Password policy and bcrypt, run off the IOLoop on a pool of its own.

bcrypt is deliberately slow (≈0.25 s at cost 12), so hashing and checking run on
AUTH_THREADS threads that do nothing else: a signin storm queues there and never
delays the IOLoop or the database reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path
from typing import Any

import bcrypt

from actorbase.errors import InvalidArgument

MIN_CHARS = 8
MAX_BYTES = 72
"""bcrypt reads at most 72 bytes; longer passwords are refused, never truncated."""

_COMMON: frozenset[str] = frozenset(
    Path(__file__).with_name("common_passwords.txt").read_text(encoding="utf-8").split()
)
"""The 10,000 most common passwords, lowercased (see setup.cfg for their source)."""


def password_arg(value: Any, field: str = "password") -> str:
    """A password as a request may carry it: a string bcrypt can take whole."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{field}: must be a non-empty string")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise InvalidArgument(f"{field}: must be at most {MAX_BYTES} bytes in UTF-8")
    return value


def check_policy(value: Any, field: str = "password") -> str:
    """A new password: 8+ characters, at most 72 UTF-8 bytes, not a common one."""
    password = password_arg(value, field)
    if len(password) < MIN_CHARS:
        raise InvalidArgument(f"{field}: must be at least {MIN_CHARS} characters")
    if password.lower() in _COMMON:
        raise InvalidArgument(f"{field}: is too common; choose a less guessable password")
    return password


def _encode(password: str) -> bytes:
    return password.encode("utf-8", "surrogatepass")


class Hasher:
    """bcrypt at a fixed cost on a dedicated thread pool; methods are awaited on the loop."""

    def __init__(self, rounds: int, threads: int) -> None:
        self.rounds = rounds
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="auth")
        self._dummy = bcrypt.hashpw(b"not a real password", bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        salt = bcrypt.gensalt(self.rounds)
        hashed = await loop.run_in_executor(self._pool, bcrypt.hashpw, _encode(password), salt)
        return hashed.decode("ascii")

    async def check(self, password: str, hashed: str | None) -> bool:
        """Whether `password` matches `hashed`. With no hash (unknown email) it checks
        a dummy of the same cost, so both cases take the same time and return False."""
        loop = asyncio.get_running_loop()
        target = hashed.encode("ascii") if hashed is not None else self._dummy
        ok = await loop.run_in_executor(self._pool, bcrypt.checkpw, _encode(password), target)
        return ok and hashed is not None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
