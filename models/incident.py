"""Projections of incident workflows: incidents, their decisions and their actions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from models.base import check_in, created_at_field, id_field, jsonb_field, timestamp_field
from models.partitions import partition_time_field
from vocabulary import ActionStatus, IncidentStatus, Severity


class Incident(SQLModel, table=True):
    """One run of an IncidentWorkflow, as last reported by its activities."""

    __tablename__: ClassVar[str] = "incidents"
    __table_args__ = (
        UniqueConstraint("workflow_id", "run_id"),
        CheckConstraint(check_in("status", IncidentStatus), name="status"),
        CheckConstraint(check_in("severity", Severity), name="severity"),
        Index("ix_incidents_tenant_id_status_last_seen_at", "tenant_id", "status", "last_seen_at"),
        Index(
            "ix_incidents_tenant_id_severity_last_seen_at", "tenant_id", "severity", "last_seen_at"
        ),
        Index(
            "ix_incidents_tenant_id_source_workflow_last_seen_at",
            "tenant_id",
            "source_workflow",
            "last_seen_at",
        ),
        Index("ix_incidents_tenant_id_vendor_last_seen_at", "tenant_id", "vendor", "last_seen_at"),
        Index(
            "ix_incidents_tenant_id_error_code_last_seen_at",
            "tenant_id",
            "error_code",
            "last_seen_at",
        ),
        Index("ix_incidents_tenant_id_first_seen_at", "tenant_id", "first_seen_at"),
        Index("ix_incidents_tenant_id_last_seen_at", "tenant_id", "last_seen_at"),
        Index("ix_incidents_tenant_id_signature", "tenant_id", "signature"),
        Index("ix_incidents_tenant_id_created_at", "tenant_id", "created_at"),
        # Flap damping: the signature's incidents closed within the window before a new one.
        Index(
            "ix_incidents_tenant_id_signature_closed_at",
            "tenant_id",
            "signature",
            "closed_at",
            postgresql_where=text("closed_at IS NOT NULL"),
        ),
        # Which open incidents does a success event resolve?
        Index(
            "ix_incidents_open_by_workflow",
            "tenant_id",
            "source_workflow",
            "step",
            postgresql_where=text("closed_at IS NULL"),
        ),
        # How many open incidents name a vendor, opened lately (vendor incidents by count)?
        Index(
            "ix_incidents_open_by_vendor",
            "tenant_id",
            "vendor",
            "created_at",
            postgresql_where=text("closed_at IS NULL"),
        ),
        # Which incidents does a vendor incident hold?
        Index(
            "ix_incidents_tenant_id_parent_incident_id",
            "tenant_id",
            "parent_incident_id",
            postgresql_where=text("parent_incident_id IS NOT NULL"),
        ),
    )

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    workflow_id: str = Field(max_length=300)
    run_id: str = Field(max_length=100)
    status: str = Field(
        default=IncidentStatus.OPEN.value,
        max_length=32,
        sa_column_kwargs={"server_default": IncidentStatus.OPEN.value},
    )
    severity: str = Field(
        default=Severity.MEDIUM.value,
        max_length=16,
        sa_column_kwargs={"server_default": Severity.MEDIUM.value},
    )
    category: str | None = Field(default=None, max_length=100)
    title: str = Field(default="", max_length=500)
    source_workflow: str = Field(max_length=200)
    step: str | None = Field(default=None, max_length=200)
    signature: str = Field(max_length=64)
    error_code: str | None = Field(default=None, max_length=100)
    vendor: str | None = Field(default=None, max_length=200)
    event_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    first_seen_at: datetime = timestamp_field(nullable=False)
    last_seen_at: datetime = timestamp_field(nullable=False)
    closed_at: datetime | None = timestamp_field()
    # The highest outbox sequence counted per outbox key: a later run ignores redeliveries.
    watermarks: dict[str, Any] = jsonb_field()
    created_at: datetime = created_at_field()
    updated_at: datetime | None = timestamp_field()
    # The vendor incident holding this one (activities/vendor_incidents.py), if one did.
    parent_incident_id: uuid.UUID | None = Field(default=None)


class Decision(SQLModel, table=True):
    """An immutable record of why the system chose what it did (rule or mock AI).

    Partitioned by month of `created_at` (models.partitions). The workflow names each
    decision, and `decision_keys` holds those names so an activity retry cannot store a
    decision twice, whichever month the retry lands in.
    """

    __tablename__: ClassVar[str] = "decisions"
    # The database key is (id, created_at); rows are still found by `id` alone.
    __mapper_args__: ClassVar[dict[str, Any]] = {"primary_key": ["id"]}
    __table_args__ = (
        Index("ix_decisions_tenant_id_created_at", "tenant_id", "created_at"),
        Index(
            "ix_decisions_tenant_id_incident_id_created_at",
            "tenant_id",
            "incident_id",
            "created_at",
        ),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    incident_id: uuid.UUID = Field(foreign_key="incidents.id")
    decision_key: str = Field(max_length=200)
    decision_type: str = Field(max_length=50)
    reasoning: str = Field(sa_column=Column(Text, nullable=False))
    confidence: float = Field(ge=0.0, le=1.0)
    ai_model: str = Field(max_length=100)
    input_digest: str = Field(max_length=64)
    output: dict[str, Any] = jsonb_field()
    created_at: datetime = partition_time_field()


class Action(SQLModel, table=True):
    """One remediation or escalation step and its lifecycle (pending → running → outcome)."""

    __tablename__: ClassVar[str] = "actions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        CheckConstraint(check_in("status", ActionStatus), name="status"),
        Index("ix_actions_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_actions_tenant_id_incident_id_attempt", "tenant_id", "incident_id", "attempt"),
        Index("ix_actions_tenant_id_status_created_at", "tenant_id", "status", "created_at"),
    )

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    incident_id: uuid.UUID = Field(foreign_key="incidents.id")
    action_type: str = Field(max_length=50)
    attempt: int = Field(ge=0)
    idempotency_key: str = Field(max_length=400)
    status: str = Field(
        default=ActionStatus.PENDING.value,
        max_length=16,
        sa_column_kwargs={"server_default": ActionStatus.PENDING.value},
    )
    parameters: dict[str, Any] = jsonb_field()
    result: dict[str, Any] = jsonb_field()
    is_reversible: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    started_at: datetime | None = timestamp_field()
    finished_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime | None = timestamp_field()


class IncidentTransition(SQLModel, table=True):
    """One lifecycle change of an incident and why it happened (append-only).

    Partitioned by month of `at` (models.partitions).
    """

    __tablename__: ClassVar[str] = "incident_transitions"
    # The database key is (id, at); rows are still found by `id` alone.
    __mapper_args__: ClassVar[dict[str, Any]] = {"primary_key": ["id"]}
    __table_args__ = (
        Index("ix_incident_transitions_tenant_id_incident_id_at", "tenant_id", "incident_id", "at"),
        {"postgresql_partition_by": "RANGE (at)"},
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    incident_id: uuid.UUID = Field(foreign_key="incidents.id")
    status: str = Field(max_length=32)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    at: datetime = partition_time_field()
