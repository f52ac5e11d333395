"""Secrets that are generated once when not configured: the signing keys in the
database (every process on it shares them), the admin token in DATA_DIR."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def load_or_create(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """Read the secret at `path`, or create it with mode 0600 exactly once.

    Returns (secret, created). The secret is written whole to a temporary file, then
    linked into place (which fails if `path` exists): two processes starting together
    agree on one secret, and neither reads a file the other is still writing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        value = make()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(value + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)
            return value, True
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip(), False


Keep = Callable[[str, Callable[[], str]], str]
"""(name, make) → the secret `name`, made once by `make` wherever it is kept."""


def kept_in(store_secret: Keep, data_dir: Path) -> Keep:
    """Secrets kept by `store_secret` (the database: `Store.secret`), so every process
    on one database signs and verifies alike. The first one made is the DATA_DIR file
    of that name if an older version left one, so existing tokens and URLs stay valid."""

    def keep(name: str, make: Callable[[], str]) -> str:
        legacy = data_dir / name
        return store_secret(
            name, lambda: legacy.read_text().strip() if legacy.is_file() else make()
        )

    return keep


def admin_token(configured: str | None, data_dir: Path) -> tuple[str, bool]:
    """The admin token: ADMIN_TOKEN, else DATA_DIR/admin_token (generated once)."""
    if configured:
        return configured, False
    return load_or_create(data_dir / "admin_token", lambda: secrets.token_urlsafe(32))
