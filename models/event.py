"""The append-only event log and the outbox that carries events to their incidents."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from models.base import check_in, created_at_field, id_field, jsonb_field, timestamp_field
from models.partitions import partition_time_field
from vocabulary import EventType, Remediation


class Event(SQLModel, table=True):
    """One failure or success reported by a client; a trigger forbids UPDATE and DELETE.

    Partitioned by month of `received_at` (models.partitions). Its idempotency keys live in
    `event_keys`: a unique key of a partitioned table must include the partition key, so on
    this table it would not stop a key reused next month.
    """

    __tablename__: ClassVar[str] = "events"
    # The database key is (id, received_at); rows are still found by `id` alone.
    __mapper_args__: ClassVar[dict[str, Any]] = {"primary_key": ["id"]}
    __table_args__ = (
        CheckConstraint(check_in("event_type", EventType), name="event_type"),
        CheckConstraint(check_in("remediation", Remediation), name="remediation"),
        Index("ix_events_tenant_id_occurred_at", "tenant_id", "occurred_at"),
        Index("ix_events_tenant_id_workflow_occurred_at", "tenant_id", "workflow", "occurred_at"),
        Index(
            "ix_events_tenant_id_event_type_occurred_at", "tenant_id", "event_type", "occurred_at"
        ),
        Index(
            "ix_events_tenant_id_error_code_occurred_at", "tenant_id", "error_code", "occurred_at"
        ),
        Index(
            "ix_events_tenant_id_incident_key_occurred_at",
            "tenant_id",
            "incident_key",
            "occurred_at",
        ),
        # The latest success of a (workflow, step): does it follow a newly opened incident?
        Index(
            "ix_events_step_successes",
            "tenant_id",
            "workflow",
            "step",
            "occurred_at",
            postgresql_where=text(f"event_type = '{EventType.STEP_SUCCEEDED}'"),
        ),
        Index(
            "ix_events_workflow_successes",
            "tenant_id",
            "workflow",
            "occurred_at",
            postgresql_where=text(f"event_type = '{EventType.WORKFLOW_SUCCEEDED}'"),
        ),
        {"postgresql_partition_by": "RANGE (received_at)"},
    )

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    idempotency_key: str = Field(max_length=200)
    # SHA-256 of the canonical body: a replayed key with another body is a conflict.
    body_sha256: str = Field(max_length=64)
    workflow: str = Field(max_length=200)
    event_type: str = Field(max_length=32)
    step: str | None = Field(default=None, max_length=200)
    vendor: str | None = Field(default=None, max_length=200)
    error_code: str | None = Field(default=None, max_length=100)
    error_message: str | None = Field(default=None, max_length=4000)
    http_status: int | None = None
    payload: dict[str, Any] = jsonb_field()
    signature: str = Field(max_length=64)
    # The incident this failure joins; success events name the (workflow, step) they resolve.
    incident_key: str | None = Field(default=None, max_length=300)
    remediation: str = Field(
        default=Remediation.NORMAL.value,
        max_length=16,
        sa_column_kwargs={"server_default": Remediation.NORMAL.value},
    )
    correlation_id: str = Field(max_length=100)
    # W3C `traceparent` of the intake's span, when tracing is on: the dispatcher continues it.
    traceparent: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    occurred_at: datetime = timestamp_field(nullable=False)
    received_at: datetime = partition_time_field()


class EventOutbox(SQLModel, table=True):
    """An event committed but not yet signalled to its incident workflow."""

    __tablename__: ClassVar[str] = "event_outbox"
    __table_args__ = (
        Index("ix_event_outbox_available_at_id", "available_at", "id"),
        # Rows of one incident key leave in sequence order.
        Index("ix_event_outbox_incident_key_id", "incident_key", "id"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True)
    )
    # No foreign key: `events` is partitioned and its unique key includes `received_at`;
    # `awfdrs retention` keeps every partition an outbox row still points into.
    event_id: uuid.UUID = Field(unique=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    incident_key: str = Field(max_length=300)
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Failures of this row's own group (not outages): at the limit the group is dead-lettered.
    failures: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = created_at_field()
    # A failed dispatch pushes this forward so a poisoned group does not spin.
    available_at: datetime = created_at_field()


class DeadLetter(SQLModel, table=True):
    """An outbox group that failed delivery too often; kept until an operator replays it."""

    __tablename__: ClassVar[str] = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_tenant_id_created_at", "tenant_id", "created_at"),)

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    incident_key: str = Field(max_length=300)
    event_ids: list[uuid.UUID] = Field(sa_column=Column(ARRAY(Uuid), nullable=False))
    failures: int
    error: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    first_queued_at: datetime = timestamp_field(nullable=False)
    created_at: datetime = created_at_field()
    replayed_at: datetime | None = timestamp_field()
    replayed_by: str | None = Field(default=None, max_length=200)
