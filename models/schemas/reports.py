"""Report and audit views: the summary of incidents over a window, and operator actions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

GroupBy = Literal["workflow", "vendor", "error_code"]
Bucket = Literal["hour", "day"]


class ReportRow(BaseModel):
    """The figures of one group of incidents (or of all of them), durations in seconds."""

    key: str | None = Field(description="The group's workflow, vendor or error code; null: none")
    opened: int
    resolved_automatically: int
    resolved_automatically_share: float | None
    escalated: int
    escalated_share: float | None
    killed: int
    mtta_p50_s: float | None = Field(description="First `escalated` → first `acknowledged`")
    mtta_p90_s: float | None
    mttr_p50_s: float | None = Field(description="first_seen_at → closed_at of resolved incidents")
    mttr_p90_s: float | None
    events_per_incident: float | None
    callback_calls: int
    pages_sent: int


class SeriesPoint(BaseModel):
    """Incidents opened in one time bucket, and the MTTR of those resolved."""

    bucket_start: datetime
    opened: int
    mttr_p50_s: float | None


class ReportSummary(BaseModel):
    """Incidents first seen in [since, until): all of them, per group, and over time."""

    since: datetime
    until: datetime
    group_by: GroupBy | None
    bucket: Bucket
    total: ReportRow
    groups: list[ReportRow]
    series: list[SeriesPoint]


class OperatorActionOut(BaseModel):
    """One audited operator action."""

    id: uuid.UUID
    actor: str = Field(description="From the credential: `jwt:<sub>` or `api-key:<owner or id>`")
    action: str
    target: str
    note: str | None = Field(description="What the caller typed (a free-text `by`, a reason)")
    detail: dict[str, Any]
    created_at: datetime
