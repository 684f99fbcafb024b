"""Inputs, signals and results of `IncidentWorkflow`; shared with the dispatcher and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

WORKFLOW_TYPE = "IncidentWorkflow"
EVENTS_SIGNAL = "events"
MAX_EVENTS_PER_SIGNAL = 200
MAX_PAYLOAD_BYTES = 8 * 1024


@dataclass
class EventSummary:
    """The compact form of one stored event that travels to its incident."""

    event_id: str
    event_type: str
    occurred_at: datetime
    step: str | None = None
    vendor: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    correlation_id: str = ""
    # Only the newest event of a signal carries its payload, and only when it is small.
    payload: dict[str, Any] | None = None


@dataclass
class EventBatch:
    """The internal `events` signal: events coalesced by the outbox dispatcher."""

    events: list[EventSummary] = field(default_factory=list)


@dataclass
class IncidentInput:
    """Identity of an incident, fixed for its whole life (carried across continue-as-new)."""

    tenant_id: str
    source_workflow: str
    signature: str
    step: str | None = None
    error_code: str | None = None
    vendor: str | None = None
    correlation_id: str = ""
