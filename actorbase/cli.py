"""The `actorbase` command: `serve`, `migrate`, `backup`, `restore` and `keys rotate`.

Each command has flags for the settings it uses (``--database-url`` overrides
``DATABASE_URL``), declared in `COMMANDS`; a new command is one row there. A bad
setting exits with one line naming it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable

import actorbase
from config.settings import FIELDS, ConfigError, Settings, load

Run = Callable[[Settings, argparse.Namespace], int]


@dataclasses.dataclass(frozen=True)
class Command:
    """One subcommand: its help, the settings it takes flags for (None: all of them),
    its own arguments, and what it runs (importing its module only when chosen)."""

    help: str
    fields: tuple[str, ...] | None
    run: Run
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from actorbase.supervisor import serve

    return serve(settings, args.argv, args.shared_port, announce=not args.quiet_start)


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    # Set by the supervisor of WEB_CONCURRENCY processes for the children it starts
    # (all but the first leave the start-up lines to it: actorbase.supervisor).
    parser.add_argument("--shared-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quiet-start", action="store_true", help=argparse.SUPPRESS)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from actorbase import migrate

    return migrate.status(settings) if args.status else migrate.migrate(settings)


def _migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status", action="store_true", help="list applied and pending migrations, change nothing"
    )


def _backup(settings: Settings, args: argparse.Namespace) -> int:
    from actorbase.backup import backup

    return backup(settings, args.file)


def _restore(settings: Settings, args: argparse.Namespace) -> int:
    from actorbase.restore import restore

    return restore(settings, args.file)


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from actorbase import keys_command

    return keys_command.run(args, settings)


def _keys_arguments(parser: argparse.ArgumentParser) -> None:
    from actorbase import keys_command

    keys_command.arguments(parser)


def _file_argument(help: str) -> Callable[[argparse.ArgumentParser], None]:
    return lambda parser: parser.add_argument("file", metavar="FILE", help=help)


_FILES = ("data_dir", "database_url", "storage_url")
"""Where an SQLite deployment keeps everything a backup holds."""

COMMANDS: dict[str, Command] = {
    "serve": Command("run the server", None, _serve, _serve_arguments),
    "migrate": Command(
        "apply database migrations", ("data_dir", "database_url"), _migrate, _migrate_arguments
    ),
    "backup": Command(
        "copy the database, secrets and local files into one archive while the server runs",
        _FILES,
        _backup,
        _file_argument("the archive to write (.tar.gz); must not exist"),
    ),
    "restore": Command(
        "restore a backup archive into an empty data directory",
        _FILES,
        _restore,
        _file_argument("the archive `actorbase backup` wrote"),
    ),
    "keys": Command(
        "rotate the signing keys while servers run",
        ("data_dir", "database_url", "jwt_private_key", "access_token_ttl", "key_reload_interval"),
        _keys,
        _keys_arguments,
    ),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actorbase", description="Self-hosted realtime backend")
    parser.add_argument("--version", action="version", version=actorbase.__version__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.arguments(sub)
        for field in FIELDS:
            if command.fields is None or field.name in command.fields:
                sub.add_argument(
                    "--" + field.name.replace("_", "-"),
                    dest=field.name,
                    metavar=field.env,
                    help=f"{field.help} (env {field.env})",
                )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # a supervisor's children get it
    overrides = {f.name: getattr(args, f.name, None) for f in FIELDS}
    try:
        settings = load(overrides=overrides)
    except ConfigError as exc:
        print(f"actorbase: configuration error: {exc}", file=sys.stderr)
        return 2
    return COMMANDS[args.command].run(settings, args)


if __name__ == "__main__":
    sys.exit(main())
