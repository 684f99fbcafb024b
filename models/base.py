"""Column helpers shared by every table: UTC timestamps, JSONB and naming conventions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# Deterministic constraint names keep Alembic migrations reviewable and reversible.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def id_field() -> Any:
    """Return a UUID primary-key field generated on the client."""
    return Field(default_factory=uuid.uuid4, primary_key=True)


def created_at_field() -> Any:
    """Return a timezone-aware creation timestamp set by the database."""
    return Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def timestamp_field(*, nullable: bool = True, index: bool = False) -> Any:
    """Return a timezone-aware timestamp column."""
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index),
    )


def jsonb_field(*, nullable: bool = False) -> Any:
    """Return a JSONB column defaulting to an empty object."""
    return Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=nullable, server_default="{}"),
    )


def sql_strings(values: Iterable[str]) -> str:
    """Return `'a', 'b'`: fixed words (enum values, never input) as SQL string literals."""
    return ", ".join(f"'{value}'" for value in values)


def check_in(column: str, values: Iterable[str]) -> str:
    """Return a CHECK expression restricting a text column to `values`."""
    return f"{column} IN ({sql_strings(values)})"
