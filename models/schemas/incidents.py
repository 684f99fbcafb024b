"""Operator views: incidents, their timelines, actions and decisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from models.schemas.common import StrictBody


class IncidentOut(BaseModel):
    """An incident as stored (the workflow's projection)."""

    id: uuid.UUID
    workflow_id: str = Field(description="Temporal workflow ID (= the incident key)")
    status: str
    severity: str
    category: str | None
    title: str
    source_workflow: str
    step: str | None
    signature: str
    error_code: str | None
    vendor: str | None
    event_count: int
    attempts: int
    first_seen_at: datetime
    last_seen_at: datetime
    closed_at: datetime | None
    web_ui_url: str


class LiveState(BaseModel):
    """What the running workflow says right now (its `status` query)."""

    status: str
    attempts: int
    event_count: int
    paused: bool
    next_action: str | None
    next_action_at: datetime | None
    latest_decision: str | None
    latest_action: str | None
    gate_reason: str | None
    escalation_level: int
    acknowledged_by: str | None
    runs: int


class IncidentDetail(IncidentOut):
    """The stored incident merged with its live state (null when closed or unreachable)."""

    live: LiveState | None
    live_state_available: bool
    live_state_error: str | None = None


class EventSample(BaseModel):
    """One event shown in a timeline bucket."""

    id: uuid.UUID
    event_type: str
    occurred_at: datetime
    error_code: str | None
    error_message: str | None


class TimelineEntry(BaseModel):
    """One line of an incident's story."""

    at: datetime
    kind: Literal["events", "decision", "action", "state"]
    summary: str
    cause: str = Field(description="The rule, decision or signal that caused this entry")
    details: dict[str, Any] = Field(default_factory=dict)


class Timeline(BaseModel):
    """An incident's story, ordered by time, bounded in size whatever the event count."""

    incident_id: uuid.UUID
    web_ui_url: str
    event_count: int
    bucket_seconds: float
    entries: list[TimelineEntry]


class ActionOut(BaseModel):
    """A remediation or escalation step."""

    id: uuid.UUID
    incident_id: uuid.UUID
    action_type: str
    attempt: int
    idempotency_key: str
    status: str
    parameters: dict[str, Any]
    result: dict[str, Any]
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime


class DecisionOut(BaseModel):
    """An immutable decision (rule or mock AI)."""

    id: uuid.UUID
    incident_id: uuid.UUID
    decision_key: str
    decision_type: str
    reasoning: str
    confidence: float
    ai_model: str
    input_digest: str
    output: dict[str, Any]
    created_at: datetime


class ControlBody(StrictBody):
    """Optional argument of a control: a reason (kill, resolve) or who acknowledges."""

    reason: str | None = Field(default=None, max_length=2000)
    by: str | None = Field(default=None, max_length=200)


class ControlAccepted(BaseModel):
    """The signal was delivered to the incident's workflow."""

    incident_id: uuid.UUID
    workflow_id: str
    signal: str
    status: Literal["accepted"] = "accepted"
