"""Event intake and event read models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from models.schemas.common import NAME_PATTERN, FieldError, StrictBody
from models.schemas.storable import utc_representable
from vocabulary import FAILURE_TYPES, EventType, Remediation

MAX_BATCH = 1000
MAX_CLOCK_SKEW = timedelta(days=1)


class ErrorIn(StrictBody):
    """What went wrong, as the client saw it."""

    code: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        examples=["VENDOR_TIMEOUT"],
    )
    message: str | None = Field(
        default=None, max_length=4000, examples=["upstream timed out after 30s"]
    )
    http_status: int | None = Field(default=None, ge=100, le=599, examples=[504])


class EventIn(StrictBody):
    """One event reported by a client workflow."""

    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Unique per event; or send the `Idempotency-Key` header instead.",
        examples=["inv-881-charge-3"],
    )
    workflow: str = Field(pattern=NAME_PATTERN, examples=["billing-sync"])
    event_type: EventType
    step: str | None = Field(default=None, min_length=1, max_length=200, examples=["charge-card"])
    vendor: str | None = Field(default=None, pattern=NAME_PATTERN, examples=["stripe"])
    occurred_at: datetime | None = Field(
        default=None, description="RFC 3339 with a UTC offset; defaults to the receive time."
    )
    error: ErrorIn | None = None
    payload: dict[str, Any] = Field(default_factory=dict, examples=[{"invoice": "inv-881"}])

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 string, e.g. 2026-11-26T10:00:00Z")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("must be an RFC 3339 timestamp, e.g. 2026-11-26T10:00:00Z") from exc
        if parsed.tzinfo is None:
            raise ValueError("must carry a UTC offset (Z or ±hh:mm)")
        utc_representable(parsed)
        if parsed - datetime.now(UTC) > MAX_CLOCK_SKEW:
            raise ValueError("is more than a day in the future")
        return parsed

    @model_validator(mode="after")
    def _failures_say_what_failed(self) -> EventIn:
        if self.event_type in FAILURE_TYPES and (
            self.error is None or not (self.error.code or self.error.message)
        ):
            raise ValueError("failure events need error.code or error.message")
        return self


class EventAccepted(BaseModel):
    """The intake result of one event."""

    event_id: uuid.UUID
    status: Literal["accepted", "duplicate"]
    incident_key: str | None = Field(
        description="Workflow ID of the incident a failure joins; null for other events."
    )
    remediation: Remediation = Field(
        description="normal; suppressed by a kill switch or a maintenance window (no incident);"
        " held by a maintenance window (the incident opens, its calls wait for the window's"
        " end); deferred: the tenant is at its cap of open or new incidents, and its incident"
        " starts when it is back under it"
    )


class EventBatchIn(StrictBody):
    """Up to 1,000 events; each is validated and stored on its own."""

    per_item_fields: ClassVar[frozenset[str]] = frozenset({"events"})
    # Items stay raw here so that one bad event is rejected alone, at its index.
    events: list[Any] = Field(
        min_length=1, max_length=MAX_BATCH, json_schema_extra={"items": {"type": "object"}}
    )


class BatchItemResult(BaseModel):
    """The outcome of one batch item, at its index."""

    index: int
    status: int = Field(description="202 stored, 200 duplicate, 404/409/422 rejected")
    event_id: uuid.UUID | None = None
    incident_key: str | None = None
    remediation: Remediation | None = None
    error: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="422 only: each problem, at its path in the batch body"
    )


class BatchResult(BaseModel):
    """Per-item results in request order, with totals."""

    results: list[BatchItemResult]
    accepted: int
    duplicates: int
    rejected: int


class ErrorOut(BaseModel):
    """The error part of a stored event."""

    code: str | None
    message: str | None
    http_status: int | None


class EventOut(BaseModel):
    """A stored event."""

    id: uuid.UUID
    idempotency_key: str
    workflow: str
    event_type: str
    step: str | None
    vendor: str | None
    error: ErrorOut | None
    payload: dict[str, Any]
    signature: str
    incident_key: str | None
    remediation: str
    correlation_id: str
    occurred_at: datetime
    received_at: datetime
