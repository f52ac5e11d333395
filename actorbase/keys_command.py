"""`actorbase keys rotate [--url]`: add a new signing key while servers run.

The new key goes into the database (store.keyring) and signs from the moment each
process reloads its keys (KEY_RELOAD_INTERVAL, or at once when a token or URL names
it); the previous ones keep verifying what they signed until it expires. It needs no
lock a server holds: on SQLite it is one short write transaction beside the server's
(WAL mode), on PostgreSQL one transaction like any node's.
"""

from __future__ import annotations

import argparse
import time

from config.settings import Settings
from store import keyring
from store.base import StoreUnavailable, Txn, now_ms
from store.factory import open_store
from store.keyring import JWT, URL
from store.signing_keys import grace_ms, make_secret
from store.sqlite import path_from_url
from store.tokens import SigningKey

MIGRATION = 8
"""The migration that made the key table."""

_NOT_MIGRATED = (
    "actorbase: {label} is not migrated for key rotation "
    "(run `actorbase migrate` or start the server first)"
)


def arguments(parser: argparse.ArgumentParser) -> None:
    """`keys rotate [--url]`: the action, and which key."""
    parser.add_argument("action", choices=["rotate"], help="make a new signing key")
    parser.add_argument(
        "--url",
        action="store_true",
        help="rotate the key that signs local storage URLs instead of the access-token key",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Rotate one purpose's key; every failure exits with one line."""
    purpose = URL if args.url else JWT
    if purpose == JWT and settings.jwt_private_key:
        raise SystemExit(
            "actorbase: JWT_PRIVATE_KEY is set, so it signs every token: rotate it by "
            "changing that setting, or unset it to let actorbase keep and rotate keys"
        )
    # Opening a missing SQLite file would create it (and DATA_DIR): an empty database
    # a later `actorbase restore` would then refuse as "not empty".
    if not settings.is_postgres and not path_from_url(settings.database_url).exists():
        raise SystemExit(_NOT_MIGRATED.format(label="sqlite"))
    try:
        store = open_store(settings.database_url, 1)
    except StoreUnavailable as exc:
        raise SystemExit(f"actorbase: {exc}") from None
    grace = grace_ms(settings, purpose)
    try:
        if not store.read(_migrated):
            raise SystemExit(_NOT_MIGRATED.format(label=store.label))
        secret = make_secret(purpose)
        now = now_ms()
        with store.transaction() as txn:
            version = keyring.add(txn, purpose, secret, now)
            pruned = keyring.prune(txn, purpose, now, grace)
    except store.integrity_errors:
        raise SystemExit("actorbase: another rotation committed first; run it again") from None
    finally:
        store.close()
    name = "URL-signing key" if purpose == URL else "access-token signing key"
    kid = "" if purpose == URL else f" (kid {SigningKey(secret).kid})"
    until = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime((now + grace) / 1000))
    print(
        f"actorbase: new {name} version {version}{kid}; servers sign with it within "
        f"KEY_RELOAD_INTERVAL ({settings.key_reload_interval:g} s); the previous key "
        f"verifies until {until}" + (f"; deleted retired versions {pruned}" if pruned else "")
    )
    return 0


def _migrated(txn: Txn) -> bool:
    """Whether migration 8 ran: a database no server has started on lacks the table."""
    if not _has_log(txn):
        return False
    versions = txn.execute("SELECT version FROM ab_migrations").fetchall()
    return MIGRATION in {row[0] for row in versions}


def _has_log(txn: Txn) -> bool:
    sql = (
        "SELECT name FROM sqlite_master WHERE name = 'ab_migrations'"
        if txn.dialect.name == "sqlite"
        else "SELECT to_regclass('ab_migrations')::text"
    )
    row = txn.execute(sql).fetchone()
    return row is not None and row[0] is not None
