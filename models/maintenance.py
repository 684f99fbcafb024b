"""Maintenance windows: planned periods when matching failures are suppressed or held."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import CheckConstraint, Index, text
from sqlmodel import Field, SQLModel

from models.base import check_in, created_at_field, id_field, timestamp_field
from vocabulary import MaintenanceMode


class MaintenanceWindow(SQLModel, table=True):
    """One window (or a recurring series of them); ending it keeps the row as the audit."""

    __tablename__: ClassVar[str] = "maintenance_windows"
    __table_args__ = (
        CheckConstraint(check_in("mode", MaintenanceMode), name="mode"),
        # Intake and the gate read the tenant's windows that were not ended.
        Index(
            "ix_maintenance_windows_live", "tenant_id", postgresql_where=text("ended_at IS NULL")
        ),
        Index("ix_maintenance_windows_tenant_id_created_at", "tenant_id", "created_at"),
    )

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    # Matchers: an exact value or an fnmatch-style glob; "*" matches anything, even no value.
    workflow: str = Field(default="*", max_length=200)
    vendor: str = Field(default="*", max_length=200)
    error_code: str = Field(default="*", max_length=200)
    step: str = Field(default="*", max_length=200)
    starts_at: datetime = timestamp_field(nullable=False)
    ends_at: datetime | None = timestamp_field()
    duration_s: int | None = None
    recurrence: str | None = Field(default=None, max_length=500)
    mode: str = Field(max_length=16)
    reason: str = Field(max_length=2000)
    actor: str = Field(max_length=200)
    created_at: datetime = created_at_field()
    ended_at: datetime | None = timestamp_field()
    ended_by: str | None = Field(default=None, max_length=200)
