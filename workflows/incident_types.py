"""Inputs, signals, activity payloads and the query view of `IncidentWorkflow`.

Plain dataclasses only: imported by the workflow sandbox, the activities and the API alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

WORKFLOW_TYPE = "IncidentWorkflow"
EVENTS_SIGNAL = "events"
DIGEST_SIGNAL = "event_digest"
MAX_EVENTS_PER_SIGNAL = 200
MAX_PAYLOAD_BYTES = 8 * 1024
FAILURE_TYPES = ("step.failed", "workflow.failed")
SUCCESS_TYPES = ("step.succeeded", "workflow.succeeded")
TERMINAL_STATUSES = ("resolved", "killed", "suppressed")
Verdict = Literal["permit", "wait", "deny"]
Outcome = Literal["success", "retryable", "fatal", "cancelled"]


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


@dataclass
class ResolveRequest:
    """`resolve` signal argument (optional)."""

    reason: str = "resolved by operator"


@dataclass
class AcknowledgeRequest:
    """`acknowledge` signal argument (optional)."""

    by: str = "operator"


@dataclass
class RetryPlan:
    """The retry policy chosen for this incident."""

    name: str
    max_attempts: int
    initial_interval_s: float
    multiplier: float
    max_interval_s: float
    jitter: float


@dataclass
class EscalationStep:
    """One escalation level, resolved to a concrete webhook."""

    name: str
    webhook_url: str | None
    ack_timeout_s: float
    severity: str


@dataclass
class IncidentState:
    """Everything the workflow knows; carried whole across continue-as-new."""

    incident_id: str = ""
    status: str = "open"
    severity: str = "medium"
    category: str = "unknown"
    retryable: bool = True
    error_code: str | None = None
    event_count: int = 0
    failure_count: int = 0
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    latest_event: EventSummary | None = None
    recent_event_ids: list[str] = field(default_factory=list)
    attempts: int = 0
    plan: RetryPlan | None = None
    callback_url: str = ""
    call_timeout_s: float = 10.0
    escalation: list[EscalationStep] = field(default_factory=list)
    escalation_level: int = 0
    paused: bool = False
    acknowledged_by: str | None = None
    close_reason: str | None = None
    next_action: str | None = None
    next_action_at: datetime | None = None
    latest_decision: str | None = None
    latest_action: str | None = None
    gate_reason: str | None = None
    gate_waits: int = 0
    analysed: bool = False
    runs: int = 1
    # Highest outbox sequence counted per outbox key; earlier runs' marks are loaded on open.
    watermarks: dict[str, int] = field(default_factory=dict)
    watermarks_loaded: bool = False
    # The newest failure's occurred_at: a success resolves only failures that happened before it.
    last_failure_at: datetime | None = None


@dataclass
class IncidentInput:
    """Identity of an incident, fixed for its whole life; `state` is set by continue-as-new."""

    tenant_id: str
    source_workflow: str
    signature: str
    step: str | None = None
    error_code: str | None = None
    vendor: str | None = None
    correlation_id: str = ""
    max_signals_per_run: int = 1000
    state: IncidentState | None = None


@dataclass
class IncidentView:
    """The `status` query: the same field names as the incident API."""

    workflow_id: str
    incident_id: str
    status: str
    severity: str
    category: str
    source_workflow: str
    step: str | None
    signature: str
    error_code: str | None
    vendor: str | None
    event_count: int
    attempts: int
    max_attempts: int | None
    paused: bool
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    next_action: str | None
    next_action_at: datetime | None
    latest_decision: str | None
    latest_action: str | None
    gate_reason: str | None
    escalation_level: int
    acknowledged_by: str | None
    close_reason: str | None
    runs: int


@dataclass
class IncidentResult:
    """How the incident ended."""

    status: str
    attempts: int
    event_count: int
    reason: str | None


# --- activity payloads -------------------------------------------------------------------


@dataclass
class RecordIncidentRequest:
    """Create or refresh the incident's database projection."""

    tenant_id: str
    workflow_id: str
    run_id: str
    source_workflow: str
    step: str | None
    signature: str
    error_code: str | None
    vendor: str | None
    status: str
    severity: str
    category: str | None
    event_count: int
    attempts: int
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    closed: bool = False
    reason: str = ""
    watermarks: dict[str, int] = field(default_factory=dict)


@dataclass
class OpenIncidentRequest:
    """Open the incident of a new run, unless every event in hand was counted before."""

    record: RecordIncidentRequest
    pending: dict[str, int]  # the highest sequence in hand per outbox key
    legacy_events: bool = False  # events arrived on the legacy signal (no sequences)


@dataclass
class OpenIncidentResult:
    """The new incident's id ("" when refused), earlier marks and the latest success."""

    incident_id: str
    watermarks: dict[str, int] = field(default_factory=dict)
    latest_success_at: datetime | None = None
    latest_success_id: str | None = None
    # Why no incident was opened: a pure redelivery, or no stored events back this start.
    refused: str = ""


@dataclass
class DecisionRequest:
    """Inputs of the classify / analyse / plan steps."""

    tenant_id: str
    incident_id: str
    workflow_id: str
    source_workflow: str
    step: str | None
    error_code: str | None
    error_message: str | None
    vendor: str | None
    event_count: int
    failure_count: int
    # The newest failure: its message is read from PostgreSQL, never carried in history.
    event_id: str = ""


@dataclass
class Classification:
    """The detector's verdict."""

    code: str
    category: str
    severity: str
    retryable: bool
    confidence: float
    summary: str


@dataclass
class Analysis:
    """Root-cause hypothesis and similar past incidents."""

    hypothesis: str
    confidence: float
    similar: list[str]
    summary: str


@dataclass
class Plan:
    """The retry plan and where to call back and escalate."""

    retry: RetryPlan
    callback_url: str
    call_timeout_s: float
    escalation: list[EscalationStep]
    summary: str


@dataclass
class GateRequest:
    """Ask the safety gate whether attempt `attempt` may run now."""

    tenant_id: str
    incident_id: str
    source_workflow: str
    vendor: str | None
    attempt: int
    max_attempts: int
    waits: int = 0  # wait answers in a row before this request: longer waits as they repeat


@dataclass
class GateDecision:
    """permit, wait(seconds, reason) or deny(reason); `kill` when a kill switch denies."""

    verdict: Verdict
    wait_s: float = 0.0
    reason: str = ""
    kill: bool = False
    probe: bool = False
    # A deny because the workflow or tenant was deactivated: the incident ends `suppressed`.
    suppress: bool = False


@dataclass
class OutcomeRecord:
    """A callback outcome to count in the vendor's circuit breaker."""

    tenant_id: str
    vendor: str
    outcome: Outcome
    probe: bool = False


@dataclass
class ActionRequest:
    """Create an action row (pending) or move it to a final status."""

    tenant_id: str
    incident_id: str
    action_type: str
    attempt: int
    idempotency_key: str
    status: str
    parameters: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallbackRequest:
    """One retry of the failed step: references the activity resolves in PostgreSQL.

    The URL, the secret, the message and the payload are read from the registry and the
    stored event (`event_id`) at call time; `callback_url`, `error_message` and `payload` stay
    for histories recorded before, and are ignored.
    """

    tenant_id: str
    incident_id: str
    workflow_id: str
    attempt: int
    idempotency_key: str
    callback_url: str
    source_workflow: str
    step: str | None
    vendor: str | None
    error_code: str | None
    error_message: str | None
    payload: dict[str, Any] | None
    correlation_id: str
    timeout_s: float
    event_id: str = ""


@dataclass
class CallbackOutcome:
    """How a callback ended."""

    outcome: Outcome
    http_status: int | None = None
    detail: str = ""
    retry_after_s: float | None = None


@dataclass
class EscalationRequest:
    """Page one escalation level."""

    tenant_id: str
    incident_id: str
    workflow_id: str
    level: int
    step: EscalationStep
    summary: str
    source_workflow: str
    error_code: str | None
    vendor: str | None
    event_count: int
    attempts: int
    correlation_id: str


@dataclass
class EscalationOutcome:
    """Whether the page was delivered."""

    delivered: bool
    detail: str = ""
