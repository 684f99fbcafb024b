"""`awfdrs secrets rotate`: seal every stored secret again under the current key."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


class SecretsCommandError(SystemExit):
    """The command could not finish; the message says why."""


def add_secrets_command(commands: Any) -> None:
    """Register `secrets rotate`."""
    secrets = commands.add_parser("secrets", help="manage the encryption of stored secrets")
    actions = secrets.add_subparsers(dest="secrets_command", required=True)
    actions.add_parser(
        "rotate",
        help="re-encrypt every stored secret under AWFDRS_SECRET_KEY",
        description="Seal every signing secret and escalation credential that is not sealed "
        "under AWFDRS_SECRET_KEY again under it, opening it with the key it names (which must "
        "be AWFDRS_SECRET_KEY or in AWFDRS_SECRET_KEYS_PREVIOUS). Idempotent; one transaction "
        "per column. Connects as AWFDRS_MIGRATION_DATABASE_URL (else AWFDRS_DATABASE_URL).",
    )


def run_secrets_command(args: argparse.Namespace) -> None:
    """Run `secrets rotate` and print how many values each column had re-sealed."""
    del args  # `rotate` is the only action and takes no options
    from sqlalchemy.exc import DBAPIError

    from models.db import create_engine
    from models.secret_box import SecretBox
    from models.stored_secrets import reseal_all
    from settings import load_settings

    settings = load_settings().owner_settings()
    box = SecretBox.from_settings(settings)

    async def rotate() -> dict[str, int]:
        engine = create_engine(settings, pool_size=1)
        try:
            return await reseal_all(engine, box)
        finally:
            await engine.dispose()

    try:
        counts = asyncio.run(rotate())
    except (DBAPIError, OSError) as exc:
        raise SecretsCommandError(f"awfdrs secrets rotate: {exc}") from None
    for column, count in counts.items():
        sys.stdout.write(f"{column}: {count} re-encrypted under key id {box.current_key_id}\n")
