"""One typed settings object, built once at start from the environment and flags.

Nothing else in actorbase reads ``os.environ``. Every setting is declared once in
``FIELDS`` (name, environment variable, parser, default, help); the CLI flags, the
validation and the README's configuration table all come from that declaration. A
bad value fails at start with one line naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from config.retention import TxRetention, parse_tx_retention
from store.query.ast import Limits

DEFAULT_UPLOAD_TYPES = (
    "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,application/json,text/csv"
)
"""Images, PDF, plain text, JSON and CSV: types whose content store.storage.sniff checks."""


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


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.strip().lower() not in choices:
            raise ValueError(f"must be {' or '.join(choices)}, got {raw!r}")
        return raw.strip().lower()

    return parse


def _storage_url(raw: str) -> str:
    if raw.startswith("file://") and len(raw) > len("file://"):
        return raw
    parts = urlsplit(raw)
    if parts.scheme == "s3" and re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", parts.netloc):
        return raw
    raise ValueError(f"must be file://path or s3://bucket/prefix, got {raw!r}")


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query:
        raise ValueError(f"must be an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


def _upload_types(raw: str) -> frozenset[str]:
    # Imported here: store.storage imports this module, so a top-level import would cycle.
    from store.storage.sniff import SNIFFABLE

    types = frozenset(t.strip().lower() for t in raw.split(",") if t.strip())
    unknown = sorted(types - SNIFFABLE)
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} cannot be verified from content; "
            f"choose from {', '.join(sorted(SNIFFABLE))}"
        )
    if not types:
        raise ValueError("must name at least one type")
    return types


def _origins(raw: str) -> frozenset[str]:
    origins = frozenset(o.strip().rstrip("/").lower() for o in raw.split(",") if o.strip())
    for origin in origins - {"*"}:
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path:
            raise ValueError(f"origins are scheme://host[:port] or *, got {origin!r}")
    return origins


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
        "metrics_token",
        "METRICS_TOKEN",
        _token,
        None,
        "bearer token (≥32 chars) for GET /metrics only; unset: only the admin token scrapes",
    ),
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
        "auth_rate_limit",
        "AUTH_RATE_LIMIT",
        _int_range(0, 10_000_000),
        "120",
        "sign-ups and sign-ins per IP address per RATE_LIMIT_WINDOW (0 disables)",
    ),
    Field(
        "auth_email_rate_limit",
        "AUTH_EMAIL_RATE_LIMIT",
        _int_range(0, 10_000_000),
        "20",
        "sign-ups and sign-ins per email address per RATE_LIMIT_WINDOW (0 disables)",
    ),
    Field(
        "mfa_rate_limit",
        "MFA_RATE_LIMIT",
        _int_range(0, 10_000_000),
        "10",
        "MFA verify attempts per mfaToken per RATE_LIMIT_WINDOW (0 disables)",
    ),
    Field(
        "upload_rate_limit",
        "UPLOAD_RATE_LIMIT",
        _int_range(0, 10_000_000),
        "60",
        "storage uploads per user (or IP) per RATE_LIMIT_WINDOW (0 disables)",
    ),
    Field(
        "cors_origins",
        "CORS_ORIGINS",
        _origins,
        "",
        "comma-separated browser origins (https://app.example.com) allowed to call the API "
        "and open WebSockets; * allows any; none by default",
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
    Field(
        "log_format",
        "LOG_FORMAT",
        _choice("text", "json"),
        "text",
        "text (readable lines) or json (one object per line, for log shippers)",
    ),
    Field(
        "query_max_depth",
        "QUERY_MAX_DEPTH",
        _int_range(1, 16),
        "4",
        "deepest nesting of links in one query (QUERY_TOO_COMPLEX beyond)",
    ),
    Field(
        "query_max_operators",
        "QUERY_MAX_OPERATORS",
        _int_range(1, 100_000),
        "200",
        "most conditions and sort keys in one query",
    ),
    Field(
        "query_max_rows",
        "QUERY_MAX_ROWS",
        _int_range(1, 10_000_000),
        "50000",
        "most rows one query may return, counting $limit at every level",
    ),
    Field(
        "query_max_bytes",
        "QUERY_MAX_BYTES",
        _int_range(1024, 1 << 31),
        "16777216",
        "largest JSON result of a query, list or live query (linked rows counted per "
        "parent); QUERY_TOO_COMPLEX beyond",
    ),
    Field(
        "storage_url",
        "STORAGE_URL",
        _storage_url,
        None,
        "file://DATA_DIR/storage by default; s3://bucket/prefix stores files on S3",
    ),
    Field(
        "s3_endpoint_url",
        "S3_ENDPOINT_URL",
        _http_url,
        None,
        "an S3-compatible server instead of AWS (credentials: the usual AWS_* variables)",
    ),
    Field(
        "public_url",
        "PUBLIC_URL",
        _http_url,
        None,
        "how clients reach this server, for signed file URLs (default: the request's host)",
    ),
    Field(
        "max_upload_bytes",
        "MAX_UPLOAD_BYTES",
        _int_range(1, 1 << 40),
        "10485760",
        "largest file upload, bytes",
    ),
    Field(
        "allowed_upload_types",
        "ALLOWED_UPLOAD_TYPES",
        _upload_types,
        DEFAULT_UPLOAD_TYPES,
        "comma-separated content types uploads may have (checked against the bytes too)",
    ),
    Field(
        "ws_ping_interval",
        "WS_PING_INTERVAL",
        _float_range(0.05, 3600),
        "30",
        "seconds between server pings; a socket silent for another interval is closed",
    ),
    Field(
        "ws_max_message_bytes",
        "WS_MAX_MESSAGE_BYTES",
        _int_range(1024, 1 << 26),
        "262144",
        "largest WebSocket message a client may send",
    ),
    Field(
        "ws_message_rate",
        "WS_MESSAGE_RATE",
        _int_range(1, 1_000_000),
        "100",
        "messages per second one socket may send (bursts of twice that), every type counted "
        "(`auth` and `pong` too); more get RATE_LIMITED",
    ),
    Field(
        "ws_max_subscriptions",
        "WS_MAX_SUBSCRIPTIONS",
        _int_range(1, 100_000),
        "100",
        "live queries one WebSocket may hold",
    ),
    Field(
        "ws_max_connections_per_user",
        "WS_MAX_CONNECTIONS_PER_USER",
        _int_range(1, 1_000_000),
        "50",
        "WebSockets and SSE streams one user may hold open on this process (not the admin "
        "token); the auth of one more gets auth-error and close 4029, an SSE stream 400 "
        "RESOURCE_EXCEEDED",
    ),
    Field(
        "max_subscriptions_per_user",
        "MAX_SUBSCRIPTIONS_PER_USER",
        _int_range(1, 10_000_000),
        "500",
        "live queries one user may hold on this process over all their WebSockets and SSE "
        "streams (not the admin token); more get RESOURCE_EXCEEDED",
    ),
    Field(
        "ws_buffer_soft",
        "WS_BUFFER_SOFT",
        _int_range(0, 1 << 30),
        "262144",
        "bytes unsent to a slow client past which its pending diffs are coalesced",
    ),
    Field(
        "ws_buffer_hard",
        "WS_BUFFER_HARD",
        _int_range(1024, 1 << 31),
        "8388608",
        "bytes unsent to a slow client past which its socket is closed",
    ),
    Field(
        "sweep_interval",
        "SWEEP_INTERVAL",
        _float_range(0.1, 86_400),
        "600",
        "seconds between sweeps of spent sign-in counters and expired MFA challenges, "
        "and of the tx log, ended sessions and orphaned files (see Retention)",
    ),
    Field(
        "tx_retention",
        "TX_RETENTION",
        parse_tx_retention,
        "7d,1000000",
        "how much of the tx log to keep: a duration (90s, 30m, 12h, 7d) and/or a count of "
        "commits, comma-joined; a commit past either is pruned",
    ),
    Field(
        "orphan_file_grace",
        "ORPHAN_FILE_GRACE",
        _int_range(1, 86_400 * 30),
        "3600",
        "seconds a stored file with no metadata row is left alone before it is deleted "
        "(a crash between the file and its row leaves one)",
    ),
    Field(
        "idempotency_window",
        "IDEMPOTENCY_WINDOW",
        _float_range(1, 30 * 86_400),
        "86400",
        "seconds a mutation's idempotency key is remembered (then swept within "
        "SWEEP_INTERVAL): a retry with the key within it gets the first commit's outcome",
    ),
    Field(
        "session_check_interval",
        "SESSION_CHECK_INTERVAL",
        _float_range(0.1, 60),
        "2",
        "seconds between batched checks that open sockets' sessions are not revoked",
    ),
    Field(
        "key_reload_interval",
        "KEY_RELOAD_INTERVAL",
        _float_range(0.1, 3600),
        "60",
        "seconds between re-reads of the signing keys, so a rotation reaches every process",
    ),
    Field(
        "sse_heartbeat",
        "SSE_HEARTBEAT",
        _float_range(0.05, 3600),
        "25",
        "seconds between `: ping` comments on SSE streams (routers drop idle ones)",
    ),
    Field(
        "presence_max_bytes",
        "PRESENCE_MAX_BYTES",
        _int_range(2, 1 << 20),
        "4096",
        "largest presence data, bytes of JSON",
    ),
    Field(
        "presence_max_rooms",
        "PRESENCE_MAX_ROOMS",
        _int_range(1, 10_000),
        "20",
        "presence rooms one socket may be in",
    ),
    Field(
        "presence_max_peers",
        "PRESENCE_MAX_PEERS",
        _int_range(1, 1_000_000),
        "1000",
        "peers one presence room may hold; entering a full one gets RESOURCE_EXCEEDED",
    ),
    Field(
        "presence_rate",
        "PRESENCE_RATE",
        _float_range(0.1, 1000),
        "10",
        "presence updates per second per peer; faster ones are coalesced, latest wins",
    ),
    Field(
        "fanout_turn",
        "FANOUT_TURN",
        _float_range(0, 10),
        "0.05",
        "seconds one diff or presence fan-out may hold the event loop before other work "
        "gets a turn (0: a turn every 64 sockets; lower is fairer, higher is faster)",
    ),
    Field(
        "web_concurrency",
        "WEB_CONCURRENCY",
        _int_range(1, 256),
        None,
        "server processes sharing PORT, supervised by `actorbase serve` (Heroku's "
        "convention); default: one per core on PostgreSQL; SQLite always runs one",
    ),
    Field(
        "node_id",
        "NODE_ID",
        _text,
        None,
        "this process's name among those sharing a PostgreSQL database, with `:<pid>` "
        "appended (and `-<n>` before it for the n-th of WEB_CONCURRENCY processes); "
        "default: DYNO (Heroku's web.1) or the hostname",
    ),
    Field(
        "node_heartbeat",
        "NODE_HEARTBEAT",
        _float_range(0.05, 60),
        "2",
        "seconds between this process's heartbeats in ab_nodes (PostgreSQL)",
    ),
    Field(
        "node_timeout",
        "NODE_TIMEOUT",
        _float_range(0.2, 600),
        "10",
        "a process without a heartbeat this long is dead: its presence peers leave every "
        "room (PostgreSQL; at least twice NODE_HEARTBEAT)",
    ),
    Field(
        "app",
        "APP",
        _text,
        None,
        "the app: a dotted module or a .py file defining schema, rules and functions",
    ),
    Field(
        "function_workers",
        "FUNCTION_WORKERS",
        _int_range(1, 256),
        "2",
        "worker processes running server functions (only started if the app has any)",
    ),
    Field(
        "function_cpu_seconds",
        "FUNCTION_CPU_SECONDS",
        _float_range(0.01, 3600),
        "1",
        "CPU time one function call may use (RESOURCE_EXCEEDED beyond)",
    ),
    Field(
        "function_wall_seconds",
        "FUNCTION_WALL_SECONDS",
        _float_range(0.01, 3600),
        "5",
        "wall-clock time one function call may take (RESOURCE_EXCEEDED beyond)",
    ),
    Field(
        "function_memory_mb",
        "FUNCTION_MEMORY_MB",
        _int_range(16, 1 << 20),
        "128",
        "memory, MiB, a function worker may allocate beyond its start-up size",
    ),
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
    metrics_token: str | None
    max_body_bytes: int
    rate_limit: int
    rate_limit_window: int
    auth_rate_limit: int
    auth_email_rate_limit: int
    mfa_rate_limit: int
    upload_rate_limit: int
    cors_origins: frozenset[str]
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
    log_format: str
    query_max_depth: int
    query_max_operators: int
    query_max_rows: int
    query_max_bytes: int
    storage_url: str
    s3_endpoint_url: str | None
    public_url: str | None
    max_upload_bytes: int
    allowed_upload_types: frozenset[str]
    ws_ping_interval: float
    ws_max_message_bytes: int
    ws_message_rate: int
    ws_max_subscriptions: int
    ws_max_connections_per_user: int
    max_subscriptions_per_user: int
    ws_buffer_soft: int
    ws_buffer_hard: int
    sweep_interval: float
    tx_retention: TxRetention
    orphan_file_grace: int
    idempotency_window: float
    session_check_interval: float
    key_reload_interval: float
    sse_heartbeat: float
    presence_max_bytes: int
    presence_max_rooms: int
    presence_max_peers: int
    presence_rate: float
    fanout_turn: float
    web_concurrency: int | None
    node_id: str
    node_heartbeat: float
    node_timeout: float
    app: str | None
    function_workers: int
    function_cpu_seconds: float
    function_wall_seconds: float
    function_memory_mb: int

    @property
    def query_limits(self) -> Limits:
        """QUERY_MAX_* as the query parser takes them, for every channel alike (HTTP,
        WebSocket, SSE and server functions)."""
        return Limits(
            self.query_max_depth,
            self.query_max_operators,
            self.query_max_rows,
            max_bytes=self.query_max_bytes,
        )

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
    if values["storage_url"] is None:
        values["storage_url"] = f"file://{Path(data_dir) / 'storage'}"
    if values["node_id"] is None:
        values["node_id"] = env.get("DYNO") or socket.gethostname()
    if values["node_timeout"] < 2 * values["node_heartbeat"]:
        raise ConfigError(
            f"NODE_TIMEOUT: must be at least twice NODE_HEARTBEAT "
            f"({values['node_heartbeat']}), got {values['node_timeout']}"
        )
    if values["log_level"] not in {"debug", "info", "warning", "error"}:
        raise ConfigError(
            f"LOG_LEVEL: must be debug, info, warning or error, got {raw['log_level']!r}"
        )
    return Settings(**values)


def env_name(name: str) -> str:
    """The environment variable behind a settings attribute (for messages)."""
    return _BY_NAME[name].env
