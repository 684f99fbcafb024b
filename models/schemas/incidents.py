"""Operator views: incidents, their timelines, actions and decisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.schemas.common import StrictBody
from vocabulary import (
    ActionStatus,
    ActionType,
    CallOutcome,
    IncidentStatus,
    Severity,
    SignalName,
    UpdateName,
)

# The signals an operator may send through the API (the others are the dispatcher's), and
# the approval updates, which answer 409 with the reason when no approval is pending.
Control = Literal[
    SignalName.PAUSE,
    SignalName.RESUME,
    SignalName.KILL,
    SignalName.RESOLVE,
    SignalName.ACKNOWLEDGE,
    UpdateName.APPROVE,
    UpdateName.REJECT,
]


class IncidentOut(BaseModel):
    """An incident as stored (the workflow's projection)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6f1c2a3e-8d4b-4f6a-9c1e-2b3d4e5f6a7b",
                    "workflow_id": "incident:0b58-…:8edf4eca0211b497e0a1c3d5e7f90123",
                    "status": IncidentStatus.WAITING,
                    "severity": Severity.HIGH,
                    "category": "timeout",
                    "title": "billing-sync · VENDOR_TIMEOUT · stripe",
                    "source_workflow": "billing-sync",
                    "step": "charge-card",
                    "signature": "8edf4eca0211b497e0a1c3d5e7f90123",
                    "error_code": "VENDOR_TIMEOUT",
                    "vendor": "stripe",
                    "event_count": 3,
                    "attempts": 1,
                    "first_seen_at": "2026-11-26T10:00:00Z",
                    "last_seen_at": "2026-11-26T10:00:04Z",
                    "closed_at": None,
                    "web_ui_url": "http://127.0.0.1:8233/namespaces/default/workflows/incident:…",
                }
            ]
        }
    )

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
    web_ui_url: str | None = Field(description="Temporal Web UI page; null when none is configured")
    parent_incident_id: uuid.UUID | None = Field(
        default=None,
        description="the vendor incident holding this incident (README: Vendor incidents)",
    )


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
    flap_count: int = Field(
        default=0,
        description="Earlier incidents of this signature resolved within the retry policy's "
        "flap window before this one opened (counted when flap damping is on)",
    )


class GroupingOut(BaseModel):
    """Why failures share this incident: the values its signature hashes and the rule used."""

    signature: str
    fields: dict[str, str | None] = Field(
        description="workflow, step, error (the canonical code, or `msg:` and the normalised"
        " message) and vendor: failures with these values join this incident"
    )
    rule: Literal["error_code", "normalised_message"]
    explanation: str
    matches_incident: bool = Field(
        description="false when the error catalogue changed since: new failures group apart"
    )


class IncidentDetail(IncidentOut):
    """The stored incident merged with its live state (null when closed or unreachable)."""

    live: LiveState | None
    live_state_available: bool
    live_state_error: str | None = None
    grouping: GroupingOut | None = Field(
        default=None, description="how its failures were grouped (null: no stored failure)"
    )


class EventSample(BaseModel):
    """One event shown in a timeline bucket."""

    id: uuid.UUID
    event_type: str
    occurred_at: datetime
    error_code: str | None
    error_message: str | None


class TimelineEntry(BaseModel):
    """One line of an incident's story."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "at": "2026-11-26T10:00:01Z",
                    "kind": "decision",
                    "summary": "classification: Matched by catalogue code: VENDOR_TIMEOUT …",
                    "cause": "mock-detector-v1",
                    "details": {"confidence": 0.95},
                },
                {
                    "at": "2026-11-26T10:00:02Z",
                    "kind": "action",
                    "summary": "retry #1: failed",
                    "cause": "retry policy (plan decision)",
                    "details": {},
                },
            ]
        }
    )

    at: datetime
    kind: Literal["events", "decision", "action", "state", "responder"]
    summary: str
    cause: str = Field(description="The rule, decision or signal that caused this entry")
    details: dict[str, Any] = Field(default_factory=dict)


class Timeline(BaseModel):
    """An incident's story, ordered by time, bounded in size whatever the event count."""

    incident_id: uuid.UUID
    web_ui_url: str | None = Field(description="Temporal Web UI page; null when none is configured")
    event_count: int
    bucket_seconds: float
    entries: list[TimelineEntry]


class ActionOut(BaseModel):
    """A remediation or escalation step."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0d5e…",
                    "incident_id": "6f1c…",
                    "action_type": ActionType.RETRY,
                    "attempt": 1,
                    "idempotency_key": "6f1c…:1",
                    "status": ActionStatus.FAILED,
                    "parameters": {"callback_url": "https://hooks.example.com/retry"},
                    "result": {"outcome": CallOutcome.RETRYABLE, "http_status": 503},
                    "started_at": "2026-11-26T10:00:02Z",
                    "finished_at": "2026-11-26T10:00:02Z",
                    "created_at": "2026-11-26T10:00:02Z",
                }
            ]
        }
    )

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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "9a8b…",
                    "incident_id": "6f1c…",
                    "decision_key": "rca",
                    "decision_type": "root_cause",
                    "reasoning": "Transient timeout failure at stripe; a retry will likely work",
                    "confidence": 0.59,
                    "ai_model": "mock-rca-v1",
                    "input_digest": "3c1f…",
                    "output": {"evidence": ["3 failure event(s) with this signature"]},
                    "created_at": "2026-11-26T10:00:01Z",
                }
            ]
        }
    )

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
    """Optional argument of a control: why, and a free-text `by` kept as the audit row's note.

    Who acted always comes from the credential (`api-key:<owner or id>`, `jwt:<sub>`).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"reason": "vendor incident"}, {"by": "alice", "reason": "deploying"}]
        },
    )

    reason: str | None = Field(default=None, max_length=2000)
    by: str | None = Field(
        default=None,
        max_length=200,
        description="A note for the audit row (e.g. who asked); never replaces the credential",
    )


class ControlAccepted(BaseModel):
    """The signal was delivered to the incident's workflow."""

    incident_id: uuid.UUID
    workflow_id: str
    signal: str
    status: Literal["accepted"] = "accepted"
