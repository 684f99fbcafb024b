"""Apply and revert the Alembic migrations from code (awfdrs up, tests)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config


def alembic_config(async_database_url: str) -> Config:
    """Return an Alembic config for the shipped migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    config.set_main_option("sqlalchemy.url", async_database_url.replace("%", "%%"))
    return config


def upgrade_database(async_database_url: str, revision: str = "head") -> None:
    """Migrate the database up to `revision` (blocking; call outside an event loop)."""
    command.upgrade(alembic_config(async_database_url), revision)


def downgrade_database(async_database_url: str, revision: str = "base") -> None:
    """Migrate the database down to `revision` (blocking; call outside an event loop)."""
    command.downgrade(alembic_config(async_database_url), revision)
