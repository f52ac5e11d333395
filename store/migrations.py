"""Schema migrations, one list per backend, applied in order exactly once.

Each entry is (version, statements). Append; never edit an applied migration.
"""

from __future__ import annotations

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
]
