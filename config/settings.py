"""One typed settings object, built once at start from the environment and flags.

Nothing else in actorbase reads ``os.environ``. Every setting is declared once in
``FIELDS`` (name, environment variable, parser, default, help); the CLI flags, the
validation and the README's configuration table all come from that declaration. A
bad value fails at start with one line naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be a whole number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _database_url(raw: str) -> str:
    scheme = urlsplit(raw).scheme
    if scheme not in {"sqlite", "postgresql", "postgres"}:
        raise ValueError(f"must start with sqlite:/// or postgresql://, got {raw!r}")
    if scheme == "sqlite" and not raw.startswith("sqlite:///"):
        raise ValueError(f"a SQLite URL is sqlite:///relative/path or sqlite:////abs, got {raw!r}")
    return raw


def _text(raw: str) -> str:
    return raw


def _token(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("must be at least 32 characters")
    return raw


@dataclasses.dataclass(frozen=True)
class Field:
    """One setting: its attribute name, environment variable, parser and default."""

    name: str
    env: str
    parse: Callable[[str], Any]
    default: str | None
    help: str


FIELDS: tuple[Field, ...] = (
    Field("port", "PORT", _int_range(0, 65535), "7700", "TCP port to listen on"),
    Field("host", "HOST", _text, "127.0.0.1", "interface to bind (0.0.0.0 in a Procfile)"),
    Field("data_dir", "DATA_DIR", _text, "./data", "where SQLite, secrets and local files live"),
    Field(
        "database_url",
        "DATABASE_URL",
        _database_url,
        None,
        "sqlite:///DATA_DIR/actorbase.db by default; postgresql://… selects PostgreSQL",
    ),
    Field(
        "admin_token",
        "ADMIN_TOKEN",
        _token,
        None,
        "admin bearer token (≥32 chars); generated once into DATA_DIR if unset",
    ),
    Field("jwt_private_key", "JWT_PRIVATE_KEY", _text, None, "RSA private key (PEM) for RS256"),
    Field(
        "max_body_bytes", "MAX_BODY_BYTES", _int_range(1024, 1 << 30), "1048576", "JSON body limit"
    ),
    Field(
        "rate_limit",
        "RATE_LIMIT",
        _int_range(0, 10_000_000),
        "600",
        "requests per client per RATE_LIMIT_WINDOW (0 disables)",
    ),
    Field(
        "rate_limit_window",
        "RATE_LIMIT_WINDOW",
        _int_range(1, 86_400),
        "60",
        "rate-limit window in seconds",
    ),
    Field(
        "read_threads",
        "READ_THREADS",
        _int_range(1, 256),
        "8",
        "bounded pool for store reads (never on the IOLoop)",
    ),
    Field(
        "group_commit",
        "GROUP_COMMIT",
        _bool,
        "true",
        "commit queued mutations together in one database transaction",
    ),
    Field(
        "group_commit_max",
        "GROUP_COMMIT_MAX",
        _int_range(1, 10_000),
        "256",
        "most mutations in one group",
    ),
    Field("bcrypt_rounds", "BCRYPT_ROUNDS", _int_range(4, 16), "12", "bcrypt cost"),
    Field(
        "auth_threads",
        "AUTH_THREADS",
        _int_range(1, 64),
        "2",
        "threads hashing passwords (one per core is right for bcrypt)",
    ),
    Field(
        "lockout_threshold",
        "LOCKOUT_THRESHOLD",
        _int_range(1, 1000),
        "5",
        "failed sign-ins before an account locks",
    ),
    Field(
        "lockout_window",
        "LOCKOUT_WINDOW",
        _int_range(1, 86_400 * 7),
        "900",
        "seconds over which failures are counted",
    ),
    Field(
        "lockout_seconds",
        "LOCKOUT_SECONDS",
        _int_range(1, 86_400 * 7),
        "1800",
        "how long a locked account stays locked",
    ),
    Field(
        "access_token_ttl",
        "ACCESS_TOKEN_TTL",
        _int_range(30, 86_400),
        "900",
        "access token lifetime, seconds",
    ),
    Field(
        "refresh_idle_ttl",
        "REFRESH_IDLE_TTL",
        _int_range(60, 86_400 * 365),
        "604800",
        "refresh token idle timeout, seconds",
    ),
    Field(
        "refresh_absolute_ttl",
        "REFRESH_ABSOLUTE_TTL",
        _int_range(60, 86_400 * 3650),
        "2592000",
        "session absolute lifetime, seconds",
    ),
    Field(
        "trust_proxy",
        "TRUST_PROXY",
        _bool,
        "false",
        "take the client IP from X-Forwarded-For (behind Heroku's router)",
    ),
    Field(
        "shutdown_timeout",
        "SHUTDOWN_TIMEOUT",
        _float_range(0.1, 60),
        "8",
        "seconds to finish in-flight work on SIGTERM",
    ),
    Field("log_level", "LOG_LEVEL", _text, "info", "debug, info, warning or error"),
)

_BY_NAME = {f.name: f for f in FIELDS}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated settings. Build with `load`; never mutate."""

    port: int
    host: str
    data_dir: str
    database_url: str
    admin_token: str | None
    jwt_private_key: str | None
    max_body_bytes: int
    rate_limit: int
    rate_limit_window: int
    read_threads: int
    group_commit: bool
    group_commit_max: int
    bcrypt_rounds: int
    auth_threads: int
    lockout_threshold: int
    lockout_window: int
    lockout_seconds: int
    access_token_ttl: int
    refresh_idle_ttl: int
    refresh_absolute_ttl: int
    trust_proxy: bool
    shutdown_timeout: float
    log_level: str

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql:", "postgres:"))

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


def load(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build settings from the environment, then CLI overrides (raw strings or None).

    Raises ConfigError naming the first bad setting.
    """
    env = os.environ if env is None else env
    raw: dict[str, str | None] = {f.name: env.get(f.env, f.default) for f in FIELDS}
    for name, value in (overrides or {}).items():
        if value is not None:
            raw[name] = str(value)
    values: dict[str, Any] = {}
    for f in FIELDS:
        text = raw[f.name]
        if text is None or (text == "" and f.default is None):
            values[f.name] = None
            continue
        try:
            values[f.name] = f.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{f.env}: {exc}") from None
    data_dir = values["data_dir"]
    if values["database_url"] is None:
        values["database_url"] = f"sqlite:///{Path(data_dir) / 'actorbase.db'}"
    if values["log_level"] not in {"debug", "info", "warning", "error"}:
        raise ConfigError(
            f"LOG_LEVEL: must be debug, info, warning or error, got {raw['log_level']!r}"
        )
    return Settings(**values)


def env_name(name: str) -> str:
    """The environment variable behind a settings attribute (for messages)."""
    return _BY_NAME[name].env
