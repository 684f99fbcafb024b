"""Maintenance window bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, Field, ValidationInfo, field_validator

from models.schemas.common import StrictBody
from rules.maintenance import parse_recurrence
from vocabulary import MaintenanceMode

# Exact names or fnmatch globs (`*`, `?`, `[...]`) over the characters names may contain.
GLOB_PATTERN = r"^[A-Za-z0-9._:/*?\[\]!-]{1,200}$"
MAX_LENGTH_S = 366 * 24 * 3600
EARLIEST_START = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_START = timedelta(days=3653)


class MatchersIn(StrictBody):
    """What a window covers; a missing matcher means any value (`*`)."""

    workflow: str = Field(default="*", pattern=GLOB_PATTERN, examples=["billing-*"])
    vendor: str = Field(default="*", pattern=GLOB_PATTERN, examples=["stripe"])
    error_code: str = Field(default="*", pattern=GLOB_PATTERN, examples=["VENDOR_*"])
    step: str = Field(default="*", pattern=GLOB_PATTERN, examples=["charge-card"])


class MaintenanceWindowCreate(StrictBody):
    """A window: `ends_at` or `duration_s` (one of them); `recurrence` repeats it."""

    matchers: MatchersIn = Field(default_factory=MatchersIn)
    starts_at: AwareDatetime = Field(examples=["2026-12-13T02:00:00Z"])
    ends_at: AwareDatetime | None = None
    # Declared after `ends_at` and validated even when absent: the two are checked together.
    duration_s: int | None = Field(
        default=None, ge=1, le=MAX_LENGTH_S, validate_default=True, examples=[7200]
    )
    recurrence: str | None = Field(
        default=None, max_length=500, examples=["FREQ=WEEKLY;BYDAY=SU;BYHOUR=2"]
    )
    mode: MaintenanceMode = MaintenanceMode.SUPPRESS
    reason: str = Field(min_length=1, max_length=2000, examples=["database upgrade"])

    @field_validator("starts_at")
    @classmethod
    def _plausible_start(cls, value: datetime) -> datetime:
        if not EARLIEST_START <= value <= datetime.now(UTC) + LATEST_START:
            raise ValueError("must be between 2000-01-01 and ten years from now")
        return value

    @field_validator("duration_s")
    @classmethod
    def _one_end(cls, value: int | None, info: ValidationInfo) -> int | None:
        ends_at, starts_at = info.data.get("ends_at"), info.data.get("starts_at")
        if (value is None) == (ends_at is None) and "ends_at" in info.data:
            raise ValueError("give exactly one of ends_at and duration_s")
        if ends_at is not None and starts_at is not None:
            if ends_at <= starts_at:
                raise ValueError("ends_at must be after starts_at")
            if ends_at - starts_at > timedelta(seconds=MAX_LENGTH_S):
                raise ValueError(f"a window lasts at most {MAX_LENGTH_S} s")
        return value

    @field_validator("recurrence")
    @classmethod
    def _valid_rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        starts_at = info.data.get("starts_at")
        if value is not None and starts_at is not None:
            parse_recurrence(value, starts_at)  # its ValueError names this field
        return value

    @property
    def length(self) -> timedelta:
        """How long each occurrence lasts."""
        if self.duration_s is not None:
            return timedelta(seconds=self.duration_s)
        assert self.ends_at is not None
        return self.ends_at - self.starts_at


class Occurrence(BaseModel):
    """One occurrence of a window."""

    starts_at: datetime
    ends_at: datetime


class MaintenanceWindowOut(BaseModel):
    """A window, whether it covers now, its current or next occurrence, and its audit trail."""

    id: uuid.UUID
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    duration_s: int | None
    recurrence: str | None
    mode: MaintenanceMode
    reason: str
    actor: str
    created_at: datetime
    ended_at: datetime | None
    ended_by: str | None
    active_now: bool
    next_occurrence: Occurrence | None
