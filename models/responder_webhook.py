"""Two-way responders: per-tenant inbound credentials and the receipts of their webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import check_in, created_at_field, id_field, timestamp_field


class ResponderSystem(StrEnum):
    """The responder systems whose webhooks may acknowledge or resolve an incident."""

    PAGERDUTY = "pagerduty"
    OPSGENIE = "opsgenie"


class ResponderSecret(SQLModel, table=True):
    """A PagerDuty subscription's signing secret or an Opsgenie inbound token, sealed.

    Every active one of a tenant and system is accepted, so a secret is rotated by adding the
    new one and retiring the old once the responder uses the new one.
    """

    __tablename__: ClassVar[str] = "responder_secrets"
    __table_args__ = (
        CheckConstraint(check_in("system", ResponderSystem), name="system"),
        Index(
            "ix_responder_secrets_tenant_id_system_created_at", "tenant_id", "system", "created_at"
        ),
    )

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    system: str = Field(max_length=16)
    # `v1:<key id>:<nonce>:<ciphertext>` under AWFDRS_SECRET_KEY; the plaintext is never stored.
    secret_encrypted: str = Field(sa_type=Text)
    last4: str = Field(max_length=4)
    created_at: datetime = created_at_field()
    retired_at: datetime | None = timestamp_field()


class ResponderReceipt(SQLModel, table=True):
    """One webhook delivery a responder system sent and what AWFDRS did with it (the audit row).

    Unique per tenant, system and delivery: a redelivered webhook finds its receipt and does
    nothing a second time.
    """

    __tablename__: ClassVar[str] = "responder_receipts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "system", "delivery_id"),
        CheckConstraint(check_in("system", ResponderSystem), name="system"),
        Index(
            "ix_responder_receipts_tenant_id_incident_id_received_at",
            "tenant_id",
            "incident_id",
            "received_at",
        ),
    )

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    system: str = Field(max_length=16)
    # PagerDuty's `event.id`; for Opsgenie, which sends no id, the SHA-256 of the body.
    delivery_id: str = Field(max_length=200)
    incident_id: uuid.UUID = Field(foreign_key="incidents.id")
    event_type: str = Field(max_length=100)  # `incident.resolved`, `Close`, …
    signal: str = Field(max_length=16)  # `acknowledge` or `resolve`
    actor: str = Field(max_length=300)  # `pagerduty:Jane Doe`
    actor_id: str | None = Field(default=None, max_length=200)  # the responder's user id
    outcome: str = Field(max_length=300)  # `signalled`, or why nothing was sent
    received_at: datetime = created_at_field()
