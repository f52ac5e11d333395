"""Where the access and refresh tokens are kept between calls (and runs), and what
an access token says about its own expiry."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str

    def to_json(self) -> dict[str, str]:
        return {"accessToken": self.access_token, "refreshToken": self.refresh_token}

    @classmethod
    def from_json(cls, body: Any) -> Tokens | None:
        if isinstance(body, dict):
            access, refresh = body.get("accessToken"), body.get("refreshToken")
            if isinstance(access, str) and isinstance(refresh, str):
                return cls(access, refresh)
        return None


class TokenStorage(Protocol):
    """Pluggable token persistence; async so a file or keyring never blocks the loop."""

    async def load(self) -> Tokens | None: ...
    async def save(self, tokens: Tokens) -> None: ...
    async def clear(self) -> None: ...


class MemoryTokenStorage:
    """The default: tokens live as long as the process."""

    def __init__(self) -> None:
        self._tokens: Tokens | None = None

    async def load(self) -> Tokens | None:
        return self._tokens

    async def save(self, tokens: Tokens) -> None:
        self._tokens = tokens

    async def clear(self) -> None:
        self._tokens = None


class FileTokenStorage:
    """Tokens in a JSON file, mode 0600, written in a thread (atomically, by rename)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    async def load(self) -> Tokens | None:
        return await asyncio.to_thread(self._read)

    async def save(self, tokens: Tokens) -> None:
        await asyncio.to_thread(self._write, json.dumps(tokens.to_json()))

    async def clear(self) -> None:
        await asyncio.to_thread(self.path.unlink, True)

    def _read(self) -> Tokens | None:
        try:
            return Tokens.from_json(json.loads(self.path.read_text()))
        except (OSError, ValueError):
            return None

    def _write(self, text: str) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)


@dataclass(frozen=True, slots=True)
class Claims:
    """The unverified claims of an access token the client needs: who and until when
    (the server verifies; the client only schedules refreshes)."""

    user_id: str | None
    issued_at: float
    expires_at: float

    @classmethod
    def of(cls, access_token: str) -> Claims:
        try:
            payload = access_token.split(".")[1]
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            exp = float(body["exp"])
            return cls(body.get("sub"), float(body.get("iat", exp - 900)), exp)
        except (IndexError, KeyError, TypeError, ValueError):
            now = time.time()
            return cls(None, now, now + 60)

    def refresh_at(self) -> float:
        """When to refresh: a fifth of the lifetime (at most a minute) before expiry."""
        margin = min(60.0, max(1.0, (self.expires_at - self.issued_at) / 5))
        return self.expires_at - margin
