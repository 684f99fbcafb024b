"""The audit trail of operator actions: who (from the credential) did what to which target."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from models.base import created_at_field, id_field, jsonb_field


class OperatorAction(SQLModel, table=True):
    """One operator action (a signal, a kill switch, a vendor override); append-only."""

    __tablename__: ClassVar[str] = "operator_actions"
    __table_args__ = (
        Index("ix_operator_actions_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_operator_actions_tenant_id_target", "tenant_id", "target"),
    )

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    # `jwt:<sub>` or `api-key:<owner or key id>`: derived from the credential, never typed in.
    actor: str = Field(max_length=300)
    action: str = Field(max_length=50)
    # What was acted on: `incident:<id>`, `kill-switch:<id>`, `vendor:<name>`.
    target: str = Field(max_length=300)
    # What the caller said (the free-text `by` or a reason); informative, not an identity.
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    detail: dict[str, Any] = jsonb_field()
    created_at: datetime = created_at_field()
