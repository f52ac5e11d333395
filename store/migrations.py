"""Schema migrations, one list per backend, applied in order exactly once.

Each entry is (version, statements). Append; never edit an applied migration.
"""

from __future__ import annotations

_ADMIN_LOCK = [
    # Set while an admin has locked the account: no sign-in, no session (admin dashboard).
    "ALTER TABLE ab_users ADD COLUMN locked_at BIGINT",
]

_ACCOUNTS = [
    # Users; emails are unique case-insensitively through email_lower.
    """CREATE TABLE ab_users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        email_lower TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'user',
        claims TEXT NOT NULL DEFAULT '{}',
        mfa_secret TEXT,
        mfa_pending_secret TEXT,
        mfa_enabled INTEGER NOT NULL DEFAULT 0,
        mfa_last_step BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL
    )""",
    "CREATE INDEX ab_users_created ON ab_users (created_at, id)",
    # One row per sign-in; its refresh tokens form one rotation family.
    """CREATE TABLE ab_sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES ab_users (id) ON DELETE CASCADE,
        device TEXT NOT NULL,
        ip TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT
    )""",
    "CREATE INDEX ab_sessions_user ON ab_sessions (user_id, last_used_at)",
    # Every refresh token ever issued (SHA-256 only); used_at set means rotated.
    """CREATE TABLE ab_refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES ab_sessions (id) ON DELETE CASCADE,
        issued_at BIGINT NOT NULL,
        used_at BIGINT
    )""",
    "CREATE INDEX ab_refresh_tokens_session ON ab_refresh_tokens (session_id)",
    """CREATE TABLE ab_recovery_codes (
        user_id TEXT NOT NULL REFERENCES ab_users (id) ON DELETE CASCADE,
        code_hash TEXT NOT NULL,
        used_at BIGINT,
        PRIMARY KEY (user_id, code_hash)
    )""",
    # A password-checked sign-in waiting for its second factor.
    """CREATE TABLE ab_mfa_challenges (
        token_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES ab_users (id) ON DELETE CASCADE,
        device TEXT NOT NULL,
        ip TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0
    )""",
    # Per email, whether or not an account has it, so lockout reveals nothing.
    """CREATE TABLE ab_signin_attempts (
        email_lower TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL,
        window_start BIGINT NOT NULL,
        locked_until BIGINT NOT NULL
    )""",
]
"""Migration 2, accounts: the same SQL on both backends (ms timestamps, JSON as text)."""


def _files(path_type: str) -> list[str]:
    """Migration 3, file metadata. `path_type` makes paths sort by code point on both
    backends, so listing pages follow the primary key's index."""
    return [
        f"""CREATE TABLE ab_files (
            path {path_type} PRIMARY KEY,
            user_id TEXT,
            size BIGINT NOT NULL,
            content_type TEXT NOT NULL,
            checksum TEXT NOT NULL,
            backend_key TEXT NOT NULL,
            updated_at BIGINT NOT NULL
        )""",
        "CREATE INDEX ab_files_owner ON ab_files (user_id, path)",
    ]


def _schema_stats(json_type: str, attributes: str) -> list[str]:
    """Migration 4, store.schema_stats' counters, backfilled once from the rows already
    stored: `id` counts rows, `userId` owned rows, each top-level attribute its rows
    per JSON type (nulls not counted). `json_type` names a value's type as
    store.schema_stats.json_type does; `attributes` yields (r.entity, j.key, j.value)."""
    insert = "INSERT INTO ab_schema_stats (entity, attribute, type, count) "
    return [
        """CREATE TABLE ab_schema_stats (
            entity TEXT NOT NULL,
            attribute TEXT NOT NULL,
            type TEXT NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (entity, attribute, type)
        )""",
        insert + "SELECT entity, 'id', 'string', count(*) FROM ab_rows GROUP BY entity",
        insert + "SELECT entity, 'userId', 'string', count(*) FROM ab_rows "
        "WHERE user_id IS NOT NULL GROUP BY entity",
        insert + f"SELECT r.entity, j.key, {json_type}, count(*) FROM {attributes} "
        "GROUP BY 1, 2, 3",
    ]


_SESSION_ENDS = [
    # Open sockets look up only the sessions that ended lately, not every one they hold.
    "CREATE INDEX ab_sessions_revoked ON ab_sessions (revoked_at) WHERE revoked_at IS NOT NULL",
    "CREATE INDEX ab_sessions_expires ON ab_sessions (expires_at)",
]

_SECRETS = [
    # Generated keys every process on the database shares (config.secrets.kept_in).
    "CREATE TABLE ab_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
]

_RETENTION = [
    # The highest tx id pruned from ab_tx (store.txlog): every tx after it is still there.
    "INSERT INTO ab_counters (name, value) VALUES ('tx_floor', 0)",
    # The orphaned-file sweep asks which of a page of stored blobs still have a row.
    "CREATE INDEX ab_files_backend_key ON ab_files (backend_key)",
]


def _keys(bigint: str) -> list[str]:
    """Rotated signing keys (store.keyring); version 0 of each stays in ab_secrets."""
    return [
        f"""CREATE TABLE ab_keys (
            purpose TEXT NOT NULL,
            version INTEGER NOT NULL,
            secret TEXT NOT NULL,
            created_at {bigint} NOT NULL,
            PRIMARY KEY (purpose, version)
        )"""
    ]


_IDEMPOTENCY = [
    # Migration 9: idempotency keys of mutations (store.idempotency), the outcome kept
    # as JSON text; the primary key makes a key unique per user across processes.
    """CREATE TABLE ab_idempotency (
        user_id TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        tx BIGINT NOT NULL,
        results TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (user_id, idem_key)
    )""",
    "CREATE INDEX ab_idempotency_created ON ab_idempotency (created_at)",
]


_PRESENCE = [
    # Presence across processes (actors.cluster_rooms): each process's liveness, each
    # room's peers, and the order of their changes (one sequence, taken while the
    # room's row is locked, so a room's changes are numbered in commit order).
    """CREATE TABLE ab_nodes (
        node TEXT PRIMARY KEY,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL,
        figures TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE SEQUENCE ab_presence_seq",
    """CREATE TABLE ab_presence_rooms (
        room TEXT PRIMARY KEY,
        seq BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )""",
    """CREATE TABLE ab_presence (
        room TEXT NOT NULL,
        peer TEXT NOT NULL,
        node TEXT NOT NULL,
        user_id TEXT,
        data TEXT NOT NULL,
        joined BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (room, peer)
    )""",
    "CREATE INDEX ab_presence_node ON ab_presence (node)",
    # Changes too large for a NOTIFY payload, read by reference; swept after a minute.
    """CREATE TABLE ab_presence_log (
        seq BIGINT PRIMARY KEY,
        entry TEXT NOT NULL,
        at BIGINT NOT NULL
    )""",
]

SQLITE: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE ab_rows (
                entity TEXT NOT NULL,
                id TEXT NOT NULL,
                data TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                user_id TEXT,
                tx INTEGER NOT NULL,
                PRIMARY KEY (entity, id)
            ) WITHOUT ROWID""",
            "CREATE INDEX ab_rows_created ON ab_rows (entity, created_at, id)",
            "CREATE INDEX ab_rows_user ON ab_rows (entity, user_id, created_at)",
            """CREATE TABLE ab_tx (
                tx INTEGER PRIMARY KEY,
                committed_at INTEGER NOT NULL,
                changes TEXT NOT NULL
            )""",
            "CREATE TABLE ab_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            "INSERT INTO ab_counters (name, value) VALUES ('tx', 0)",
        ],
    ),
    (2, _ACCOUNTS),
    (3, _files("TEXT")),
    (
        4,
        _schema_stats(
            "CASE j.type WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' "
            "WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' WHEN 'text' THEN 'string' "
            "ELSE j.type END",
            "ab_rows r, json_each(r.data) j WHERE j.type <> 'null'",
        ),
    ),
    (5, _SESSION_ENDS),
    (6, _SECRETS),
    (7, _RETENTION),
    (8, _keys("INTEGER")),
    (9, _IDEMPOTENCY),
    (10, []),  # presence spans processes on PostgreSQL only; one SQLite process owns its rooms
    (13, _ADMIN_LOCK),
]

POSTGRES: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE ab_rows (
                entity TEXT NOT NULL,
                id TEXT NOT NULL,
                data JSONB NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                user_id TEXT,
                tx BIGINT NOT NULL,
                PRIMARY KEY (entity, id)
            )""",
            "CREATE INDEX ab_rows_created ON ab_rows (entity, created_at, id)",
            "CREATE INDEX ab_rows_user ON ab_rows (entity, user_id, created_at)",
            """CREATE TABLE ab_tx (
                tx BIGINT PRIMARY KEY,
                committed_at BIGINT NOT NULL,
                changes JSONB NOT NULL
            )""",
            # One row, locked by every writer until COMMIT: tx ids follow commit order
            # even with several server processes on one database.
            "CREATE TABLE ab_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            "INSERT INTO ab_counters (name, value) VALUES ('tx', 0)",
        ],
    ),
    (2, _ACCOUNTS),
    (3, _files('TEXT COLLATE "C"')),
    (
        4,
        _schema_stats(
            "jsonb_typeof(j.value)",
            "ab_rows r, jsonb_each(r.data) j WHERE jsonb_typeof(j.value) <> 'null'",
        ),
    ),
    (5, _SESSION_ENDS),
    (6, _SECRETS),
    (7, _RETENTION),
    (8, _keys("BIGINT")),
    (9, _IDEMPOTENCY),
    (10, _PRESENCE),
    (13, _ADMIN_LOCK),
]
