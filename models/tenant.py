"""Tenants and their API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import CheckConstraint, Text
from sqlmodel import Field, SQLModel

from models.base import check_in, created_at_field, id_field, timestamp_field

KEY_SCOPES = ("ingest", "operator")


class Tenant(SQLModel, table=True):
    """An organisation whose events, incidents and keys are isolated from every other."""

    __tablename__: ClassVar[str] = "tenants"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=200, unique=True)
    active: bool = Field(default=True, sa_column_kwargs={"server_default": "true"})
    ingest_rate_per_s: int = Field(default=5000, ge=1, sa_column_kwargs={"server_default": "5000"})
    # Fairness caps; None means the global setting (AWFDRS_TENANT_MAX_*) applies.
    max_open_incidents: int | None = None
    max_new_incidents_per_minute: int | None = None
    max_concurrent_callbacks: int | None = None
    # Sealed: the tenant's escalation policy (rules.targets) under its workflows' own.
    escalation_policy: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = created_at_field()
    updated_at: datetime | None = timestamp_field()


class ApiKey(SQLModel, table=True):
    """A bearer key of one tenant, stored only as its SHA-256 hash."""

    __tablename__: ClassVar[str] = "api_keys"
    __table_args__ = (CheckConstraint(check_in("scope", KEY_SCOPES), name="scope"),)

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    key_hash: str = Field(max_length=64, unique=True)
    # The first characters of the key, shown in listings so operators can tell keys apart.
    display_prefix: str = Field(max_length=16)
    scope: str = Field(max_length=16)
    name: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    # The person or team the key belongs to (a name or email); audit rows name keys by it.
    owner: str | None = Field(default=None, max_length=200)
    created_at: datetime = created_at_field()
    last_used_at: datetime | None = timestamp_field()
    revoked_at: datetime | None = timestamp_field()
