"""The `awfdrs` command: `up`, `demo`, `migrate`, `retention`, `secrets`, `report`, operators'."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from observability import configure_logging
from settings import SettingsError


def _port(value: str) -> int:
    port = int(value)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port")
    return port


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="awfdrs", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run PostgreSQL, Valkey, Temporal, the worker and the API")
    up.add_argument("--api-port", type=_port, default=8000)
    up.add_argument("--temporal-port", type=_port, default=7233)
    up.add_argument("--ui-port", type=_port, default=8233)
    up.add_argument("--data-dir", type=Path, default=Path(".awfdrs"))
    migrate = commands.add_parser(
        "migrate",
        help="apply database migrations as the owner (AWFDRS_MIGRATION_DATABASE_URL, "
        "else AWFDRS_DATABASE_URL)",
    )
    migrate.add_argument(
        "--ensure-app-login",
        action="store_true",
        help="then create the login role AWFDRS_DATABASE_URL names (or set its password) "
        "as a member of the least-privilege role awfdrs_app",
    )
    demo = commands.add_parser("demo", help="run a failure scenario against `awfdrs up`")
    demo.add_argument("--data-dir", type=Path, default=Path(".awfdrs"))
    from devstack.escalation_cli import add_responder_commands
    from devstack.maintenance_cli import add_maintenance_command
    from devstack.operator_cli import add_operator_commands
    from devstack.report_cli import add_report_command
    from devstack.responders_cli import add_responders_command
    from devstack.retention_cli import add_retention_command
    from devstack.secrets_cli import add_secrets_command

    add_operator_commands(commands)
    add_report_command(commands)
    add_maintenance_command(commands)
    add_responders_command(commands)
    add_responder_commands(commands)
    add_retention_command(commands)
    add_secrets_command(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `awfdrs` console script."""
    args = build_parser().parse_args(argv)
    configure_logging(level="INFO", fmt="text")
    try:
        if args.command == "up":
            from devstack.stack import UpOptions, up

            up(
                UpOptions(
                    data_dir=args.data_dir.resolve(),
                    api_port=args.api_port,
                    temporal_port=args.temporal_port,
                    ui_port=args.ui_port,
                )
            )
        elif args.command == "demo":
            import asyncio

            from devstack.demo import Endpoints, run_demo

            asyncio.run(run_demo(Endpoints.load(args.data_dir.resolve())))
            # The Temporal client's native threads can outlive the event loop and abort the
            # interpreter's teardown ("PyGILState_Release ... finalizing"): a finished demo
            # has nothing left to clean up, so it leaves without that teardown.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        elif args.command in ("events", "incidents", "kill-switch", "vendors"):
            from devstack.operator_cli import run_operator_command

            run_operator_command(args)
        elif args.command == "report":
            from devstack.report_cli import run_report_command

            run_report_command(args)
        elif args.command == "maintenance":
            from devstack.maintenance_cli import run_maintenance_command

            run_maintenance_command(args)
        elif args.command == "responders":
            from devstack.responders_cli import run_responders_command

            run_responders_command(args)
        elif args.command in ("escalation-policies", "notify"):
            from devstack.escalation_cli import run_responder_command

            run_responder_command(args)
        elif args.command == "retention":
            from devstack.retention_cli import run_retention_command

            run_retention_command(args)
        elif args.command == "secrets":
            from devstack.secrets_cli import run_secrets_command

            run_secrets_command(args)
        elif args.command == "migrate":
            migrate(ensure_app_login=args.ensure_app_login)
    except SettingsError as exc:
        sys.exit(f"awfdrs: {exc}")


def migrate(*, ensure_app_login: bool) -> None:
    """Apply the migrations as the owner; optionally set up the application's login role."""
    import asyncio

    import asyncpg

    from devstack import db_roles
    from models.migrate import upgrade_database
    from settings import load_settings

    settings = load_settings()
    owner = settings.owner_settings()
    upgrade_database(owner.async_database_url)
    if not ensure_app_login:
        return
    try:
        user = asyncio.run(
            db_roles.ensure_app_login(
                owner_url=owner.plain_database_url, app_url=settings.plain_database_url
            )
        )
    except (db_roles.AppLoginError, asyncpg.PostgresError, OSError) as exc:
        sys.exit(f"awfdrs migrate: {exc}")
    sys.stdout.write(f"login role {user} is a member of {db_roles.APP_ROLE}\n")


if __name__ == "__main__":
    main()
