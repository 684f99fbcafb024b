"""What the drop-in intakes answer, documented so generated clients parse it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from models.schemas.common import FieldError


class PagerDutyAccepted(BaseModel):
    """PagerDuty's own 202 body."""

    status: Literal["success"]
    message: str
    dedup_key: str


class PagerDutyInvalid(BaseModel):
    """PagerDuty's own 400 body, which PagerDuty clients parse."""

    status: str
    message: str
    errors: list[str]


class AlertmanagerResult(BaseModel):
    """One notification's outcome: valid alerts are stored, the rest reported (`partial`)."""

    status: Literal["success", "partial"]
    alerts: int
    accepted: int
    duplicates: int
    rejected: int | None = Field(default=None, description="Only when `partial`")
    errors: list[FieldError] | None = Field(default=None, description="Only when `partial`")


class CloudEventResult(BaseModel):
    """One CloudEvent's outcome, in the order sent."""

    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None = Field(default=None, description="When accepted or a duplicate")
    errors: list[FieldError] | None = Field(default=None, description="When rejected")


class CloudEventsResult(BaseModel):
    """The outcomes of a structured, binary or batch delivery."""

    results: list[CloudEventResult]
