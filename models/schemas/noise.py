"""The noise report's shape."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class NoiseRow(BaseModel):
    """Figures of one workflow, one vendor or the whole tenant."""

    name: str | None = Field(description="the workflow or vendor (null: no vendor, or the total)")
    failures: int = Field(description="failure events received")
    suppressed: int = Field(description="…of them suppressed (kill switch or maintenance window)")
    held: int = Field(description="…of them held by a maintenance window")
    deferred: int = Field(description="…of them deferred by the tenant's incident caps")
    incidents: int = Field(description="incidents opened")
    pages: int = Field(description="escalation pages delivered")
    events_per_incident: float | None = Field(description="failures / incidents (null: none)")
    pages_per_incident: float | None = Field(description="pages / incidents (null: none)")


class NoiseReport(BaseModel):
    """How much noise became how many incidents and pages, per workflow and per vendor."""

    since: datetime
    until: datetime
    total: NoiseRow
    workflows: list[NoiseRow]
    vendors: list[NoiseRow]
