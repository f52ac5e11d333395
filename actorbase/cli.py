"""The `actorbase` command: `serve`, `migrate` and `keys rotate`.

Every setting has a flag (``--database-url``) that overrides its environment
variable (``DATABASE_URL``). A bad setting exits with one line naming it.
"""

from __future__ import annotations

import argparse
import sys

import actorbase
from actorbase import keys_command
from config.settings import FIELDS, ConfigError, Settings, load


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actorbase", description="Self-hosted realtime backend")
    parser.add_argument("--version", action="version", version=actorbase.__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help in (("serve", "run the server"), ("migrate", "apply database migrations")):
        command = commands.add_parser(name, help=help)
        for field in FIELDS:
            command.add_argument(
                "--" + field.name.replace("_", "-"),
                dest=field.name,
                metavar=field.env,
                help=f"{field.help} (env {field.env})",
            )
    keys_command.register(commands)
    return parser


def migrate(settings: Settings) -> int:
    """Apply pending migrations (the Procfile's release phase). An unreachable or
    newer database, or an SQLite file a server holds, exits with one line."""
    from store.base import StoreUnavailable
    from store.factory import open_store

    try:
        store = open_store(settings.database_url, 1)
    except StoreUnavailable as exc:
        raise SystemExit(f"actorbase: {exc}") from None
    try:
        store.claim()
        applied = store.migrate()
    except StoreUnavailable as exc:
        raise SystemExit(f"actorbase: {exc}") from None
    finally:
        store.close()
    print(
        f"actorbase: {store.label} migrated"
        + (f" (applied {applied})" if applied else ", nothing to do")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in FIELDS}
    try:
        settings = load(overrides=overrides)
    except ConfigError as exc:
        print(f"actorbase: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return migrate(settings)
    if args.command == "keys":
        return keys_command.run(args, settings)
    from actorbase.server import serve

    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
