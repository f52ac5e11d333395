"""The effective configuration as one start-up log line: what an operator checks first.

Where the data lives (database, file storage), what the app declares (entities,
functions), who may call from a browser (CORS) and the limits that decide what
clients are refused. Never a secret: the database URL loses its password, storage
URLs their credentials, and the admin token and keys appear only as where they come
from.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from config.app import App
from config.settings import Settings

LIMITS = (
    "max_body_bytes",
    "max_upload_bytes",
    "rate_limit",
    "rate_limit_window",
    "auth_rate_limit",
    "ws_max_connections_per_user",
    "ws_max_subscriptions",
    "max_subscriptions_per_user",
    "ws_max_message_bytes",
    "query_max_rows",
    "query_max_bytes",
    "read_threads",
    "function_workers",
)
"""The settings shown: those that decide what gets refused, and the pools' sizes."""


def without_credentials(url: str) -> str:
    """`url` without the password of its user part and without a `password` query
    parameter (libpq takes either)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}@{host}" if user else host
    query = "&".join(
        p for p in parts.query.split("&") if p and p.partition("=")[0].lower() != "password"
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # as given: urlunsplit would drop sqlite:///'s empty host
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def describe(settings: Settings, app: App) -> dict[str, Any]:
    """The configuration this process runs with, as log fields, secrets left out."""
    s = settings
    storage = without_credentials(s.storage_url)
    return {
        "database": without_credentials(s.database_url),
        "storage": storage,
        "s3_endpoint": without_credentials(s.s3_endpoint_url) if s.s3_endpoint_url else None,
        "app": s.app,
        "entities": sorted(set(app.schema.entities) | set(app.rules.entities)),
        "functions": sorted(app.functions),
        "cors_origins": sorted(s.cors_origins),
        "trust_proxy": s.trust_proxy,
        "admin_token": "ADMIN_TOKEN" if s.admin_token else "DATA_DIR/admin_token",
        "jwt_key": "JWT_PRIVATE_KEY" if s.jwt_private_key else "kept in the database",
        **{name: getattr(s, name) for name in LIMITS},
    }
