"""`awfdrs retention`: drop old monthly partitions, working in the database itself."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from typing import Any

from devstack.operator_cli import CliError


def add_retention_command(commands: Any) -> None:
    """Register `retention`, which drops old partitions straight in the database."""
    retention = commands.add_parser(
        "retention",
        help="drop months of events, decisions and transitions older than a cut",
        description="Drop whole monthly partitions entirely older than the cut (never rows), "
        "with their idempotency keys, and create the coming months' partitions. It is DDL: "
        "it connects as the owner of the tables, AWFDRS_MIGRATION_DATABASE_URL (else "
        "AWFDRS_DATABASE_URL).",
    )
    retention.add_argument(
        "--older-than",
        type=_age,
        metavar="AGE",
        help="e.g. 90d (default: AWFDRS_RETENTION_DAYS days)",
    )
    retention.add_argument("--dry-run", action="store_true", help="report, change nothing")


def _age(text: str) -> timedelta:
    from models.retention import parse_age

    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_retention_command(args: argparse.Namespace) -> None:
    """Apply retention as the table owner and print what was dropped, kept and created."""
    import asyncpg

    from models.retention import RetentionBusy, apply_retention
    from settings import load_settings

    settings = load_settings().owner_settings()
    older_than = args.older_than or timedelta(days=settings.retention_days)
    try:
        report = asyncio.run(apply_retention(settings, older_than=older_than, dry_run=args.dry_run))
    except (RetentionBusy, asyncpg.PostgresError, OSError) as exc:
        raise CliError(f"awfdrs retention: {exc}") from None
    sys.stdout.write("\n".join(report.lines()) + "\n")
    if not report.complete:
        raise CliError("awfdrs retention: some partitions were busy; run it again")
