"""Two-way responders: the configuration API's shapes and the webhook bodies PagerDuty and
Opsgenie send (only the fields AWFDRS reads; everything else is ignored)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.schemas.common import StrictBody
from models.schemas.storable import StorableModel

Text200 = Field(default=None, max_length=200)


class ResponderSecretCreate(StrictBody):
    """A secret to accept: PagerDuty's subscription secret, or an Opsgenie token.

    Without `secret` (Opsgenie only) AWFDRS generates a token and shows it once.
    """

    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=512,
        pattern=r"^[\x21-\x7e]+$",
        description="The secret as the responder shows it (printable ASCII, no spaces).",
    )


class ResponderSecretOut(BaseModel):
    """A responder secret without its value."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    system: Literal["pagerduty", "opsgenie"]
    webhook_path: str = Field(
        description="Where the responder sends its webhooks (append it to the API's address)."
    )
    masked: str = Field(description="`••••` and the secret's last four characters.")
    active: bool
    created_at: datetime
    retired_at: datetime | None


class ResponderSecretCreated(ResponderSecretOut):
    """A stored secret; a generated token is shown here once and never again."""

    generated_token: str | None = Field(
        default=None, description="The token AWFDRS generated (only when none was sent)."
    )


class PagerDutyAgent(StorableModel):
    """Who acted in PagerDuty (a user or a service reference)."""

    id: str | None = Text200
    summary: str | None = Text200


class PagerDutyIncidentData(StorableModel):
    """The incident a v3 webhook event is about."""

    id: str | None = Text200
    # The dedup key of the Events API v2 trigger that opened it: AWFDRS sends its incident id.
    incident_key: str | None = Field(default=None, max_length=255)


class PagerDutyEvent(StorableModel):
    """`event` of a PagerDuty Webhooks v3 delivery."""

    id: str = Field(min_length=1, max_length=200)
    event_type: str = Field(min_length=1, max_length=100)
    agent: PagerDutyAgent | None = None
    data: PagerDutyIncidentData | None = None


class PagerDutyWebhook(StorableModel):
    """A PagerDuty Webhooks v3 delivery."""

    event: PagerDutyEvent


class OpsgenieAlert(StorableModel):
    """`alert` of an Opsgenie outgoing webhook."""

    alias: str | None = Field(default=None, max_length=512)
    username: str | None = Text200


class OpsgenieSource(StorableModel):
    """`source` of an Opsgenie outgoing webhook: where the action was taken."""

    name: str | None = Text200


class OpsgenieWebhook(StorableModel):
    """An Opsgenie outgoing webhook delivery (one alert action)."""

    action: str = Field(min_length=1, max_length=100)
    alert: OpsgenieAlert
    source: OpsgenieSource | None = None


class ResponderAnswer(BaseModel):
    """What AWFDRS did with a responder's webhook (always 202 unless it was refused)."""

    status: Literal["signalled", "ignored", "duplicate"]
    reason: str
    incident_id: uuid.UUID | None = None
    signal: Literal["acknowledge", "resolve"] | None = None
