"""What arrives at `IncidentWorkflow` by signal: the dispatcher's events and operators' orders.

Plain dataclasses only: imported by the workflow sandbox, the dispatcher and the API alike.
Every operator argument is optional, so each signal also works from the `temporal` CLI
without `--input`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class EventSummary:
    """The compact form of one stored event that travels to its incident."""

    event_id: str
    # An `EventType` value; typed as text because it is read back from stored rows as such.
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
    # The event's outbox sequence number (0 in signals sent before sequences existed).
    seq: int = 0


@dataclass
class EventBatch:
    """The legacy `events` signal: every event in full, de-duplicated by event id."""

    events: list[EventSummary] = field(default_factory=list)


@dataclass
class EventDigest:
    """The `event_digest` signal: one outbox group, de-duplicated exactly by sequence number.

    Per event it carries only what counting needs (about 30 bytes), so a storm's signals stay
    small in the workflow's history; the newest failure and success travel in full.
    """

    source: str  # the outbox key the events travelled under: the incident's or a resolve key
    seqs: list[int] = field(default_factory=list)  # ascending outbox sequence numbers
    kinds: str = ""  # one letter per event: "f" failure, "s" success
    occurred_us: list[int] = field(default_factory=list)  # occurred_at, µs since the epoch
    latest_failure: EventSummary | None = None  # the newest failure by occurred_at
    latest_success: EventSummary | None = None  # the newest success by occurred_at


@dataclass
class KillRequest:
    """`kill` signal argument (optional)."""

    reason: str = "killed by operator"
    by: str = "operator"
    origin: str = ""  # the responder system that sent it, as in `AcknowledgeRequest`


@dataclass
class ResolveRequest:
    """`resolve` signal argument (optional)."""

    reason: str = "resolved by operator"
    by: str = "operator"
    origin: str = ""  # the responder system that sent it, as in `AcknowledgeRequest`


@dataclass
class AcknowledgeRequest:
    """`acknowledge` signal argument (optional)."""

    by: str = "operator"
    # The responder system that sent it ("pagerduty", "opsgenie"): it is not mirrored back
    # there. Empty for AWFDRS's own operators.
    origin: str = ""


@dataclass
class OperatorRequest:
    """`pause` and `resume` signal argument (optional): who acted, and why if they said."""

    by: str = "operator"
    reason: str | None = None


@dataclass
class ApprovalRequest(OperatorRequest):
    """`approve` and `reject` update argument: who decided, and why if they said."""
