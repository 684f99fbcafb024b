"""Kill switch and vendor bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, Field, field_validator

from models.schemas.common import NAME_PATTERN, StrictBody


class KillSwitchCreate(StrictBody):
    """Stop remediation for a workflow, optionally only towards one vendor."""

    workflow: str = Field(pattern=NAME_PATTERN, examples=["billing-sync"])
    vendor: str | None = Field(default=None, pattern=NAME_PATTERN, examples=["stripe"])
    reason: str = Field(min_length=1, max_length=2000, examples=["stripe incident INC-42"])
    # Past this moment the switch stops nothing (the row stays `active` as it was recorded).
    expires_at: AwareDatetime | None = Field(default=None, examples=["2026-12-08T06:00:00Z"])

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class KillSwitchOut(BaseModel):
    """A kill switch and its audit trail."""

    id: uuid.UUID
    workflow: str
    vendor: str | None
    reason: str
    actor: str
    active: bool
    created_at: datetime
    expires_at: datetime | None
    deactivated_at: datetime | None
    deactivated_by: str | None


class KillSwitchActivated(KillSwitchOut):
    """A new kill switch, with how many running incidents were told to stop."""

    incidents_signalled: int


class VendorOut(BaseModel):
    """A vendor's live breaker state and its settings."""

    name: str
    circuit_state: str
    open_for_s: float
    failure_rate_threshold: float
    window_size: int
    minimum_calls: int
    open_duration_s: float
    half_open_probes: int
    rate_limit_per_s: float
    call_timeout_s: float
