"""A tenant's registered workflows, vendors and kill switches."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from models.base import check_in, created_at_field, id_field, jsonb_field, timestamp_field
from vocabulary import WorkflowMode


class Workflow(SQLModel, table=True):
    """A client workflow whose failed steps AWFDRS may retry through its callback."""

    __tablename__: ClassVar[str] = "workflows"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        CheckConstraint(check_in("mode", WorkflowMode), name="mode"),
    )

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    callback_url: str = Field(max_length=2048)
    # Sealed (models.secret_box): such URLs often embed the credential of the receiver.
    escalation_webhook_url: str | None = Field(default=None, sa_type=Text)
    # Sealed: the workflow's own escalation policy (rules.targets), credentials and all.
    escalation_policy: str | None = Field(default=None, sa_type=Text)
    # Or the name of one of the tenant's named escalation policies.
    escalation_policy_name: str | None = Field(default=None, max_length=200)
    # Either {"name": <policy in retry_policies.yaml>} or an inline policy override.
    retry_policy: dict[str, Any] = jsonb_field()
    active: bool = Field(default=True, sa_column_kwargs={"server_default": "true"})
    # `dry_run`: calls and pages are recorded with what they would send, never sent. Read by
    # the activities at call time, so a change applies from the next attempt.
    mode: str = Field(
        default=WorkflowMode.LIVE.value,
        max_length=16,
        sa_column_kwargs={"server_default": WorkflowMode.LIVE.value},
    )
    created_at: datetime = created_at_field()
    updated_at: datetime | None = timestamp_field()


class NamedEscalationPolicy(SQLModel, table=True):
    """A tenant's escalation policy that workflows name (`escalation_policy: "<name>"`)."""

    __tablename__: ClassVar[str] = "escalation_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    name: str = Field(max_length=200)
    # Sealed (models.secret_box): the policy's JSON holds routing keys, API keys and URLs.
    policy_encrypted: str = Field(sa_type=Text)
    created_at: datetime = created_at_field()
    updated_at: datetime | None = timestamp_field()


class Vendor(SQLModel, table=True):
    """An outside service a tenant's callbacks depend on; its breaker state lives in Redis."""

    __tablename__: ClassVar[str] = "vendors"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    name: str = Field(max_length=200)
    settings: dict[str, Any] = jsonb_field()
    created_at: datetime = created_at_field()


class KillSwitch(SQLModel, table=True):
    """An operator's stop order for a workflow (optionally one vendor); rows are never deleted."""

    __tablename__: ClassVar[str] = "kill_switches"
    __table_args__ = (
        Index(
            "ix_kill_switches_active_scope",
            "tenant_id",
            "workflow",
            "vendor",
            postgresql_where=text("active"),
        ),
        Index("ix_kill_switches_tenant_id_created_at", "tenant_id", "created_at"),
    )

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    workflow: str = Field(max_length=200)
    vendor: str | None = Field(default=None, max_length=200)
    reason: str = Field(max_length=2000)
    actor: str = Field(max_length=200)
    active: bool = Field(default=True, sa_column_kwargs={"server_default": "true"})
    created_at: datetime = created_at_field()
    # Past this moment the switch no longer stops anything (it stays `active` as recorded).
    expires_at: datetime | None = timestamp_field()
    deactivated_at: datetime | None = timestamp_field()
    deactivated_by: str | None = Field(default=None, max_length=200)
