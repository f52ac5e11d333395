"""Secrets that are generated once and kept in DATA_DIR when not configured."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def load_or_create(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """Read the secret at `path`, or create it with mode 0600 exactly once.

    Returns (secret, created). O_EXCL makes two processes starting together agree
    on one secret: the loser reads the winner's file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), False
    value = make()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value, True


def admin_token(configured: str | None, data_dir: Path) -> tuple[str, bool]:
    """The admin token: ADMIN_TOKEN, else DATA_DIR/admin_token (generated once)."""
    if configured:
        return configured, False
    return load_or_create(data_dir / "admin_token", lambda: secrets.token_urlsafe(32))
