"""The input, state, query view and result of `IncidentWorkflow`.

Plain dataclasses only: imported by the workflow sandbox, the activities and the API alike.
`IncidentState` is carried whole across continue-as-new, so a new field needs a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vocabulary import ApprovalMode, IncidentStatus, PageSeverity, Severity
from workflows.signal_payloads import EventSummary


@dataclass
class RetryPlan:
    """The retry policy chosen for this incident."""

    name: str
    max_attempts: int
    initial_interval_s: float
    multiplier: float
    max_interval_s: float
    jitter: float
    # `open_after`: remediation waits for this many failures within this window (0: none).
    open_after_count: int = 0
    open_after_within_s: float = 0.0
    approval: ApprovalMode = ApprovalMode.NEVER
    approval_timeout_s: float = 1800.0  # AWFDRS_APPROVAL_TIMEOUT_S when the plan was made
    # Flap damping (0 re-opens: off): `flap_count` earlier incidents of this signature resolved
    # within `flap_within_s` before it opened; at `flap_reopens` or more, it is `flapping`.
    flap_reopens: int = 0
    flap_within_s: float = 0.0
    flap_quiet_s: float = 0.0
    flap_count: int = 0
    # An earlier incident of this flap episode already said `flapping`: do not say it again.
    flap_announced: bool = False


@dataclass
class EscalationStep:
    """One escalation level: its timeout and what kinds of target it pages (no credentials)."""

    name: str
    webhook_url: str | None  # read by histories recorded before typed targets; now None
    ack_timeout_s: float
    severity: PageSeverity
    targets: list[str] = field(default_factory=list)  # the type of each target, in order
    fallback: str | None = None  # the fallback target's type
    fallback_after: int = 3  # tries of a primary target before the fallback is paged


@dataclass
class TargetRef:
    """A target that was paged: its level, index (-1: the level's fallback) and type."""

    level: int
    index: int
    kind: str


@dataclass
class IncidentState:
    """Everything the workflow knows; carried whole across continue-as-new."""

    incident_id: str = ""
    status: IncidentStatus = IncidentStatus.OPEN
    severity: Severity = Severity.MEDIUM
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
    # Why the safety gate last held an attempt back (None after it permitted one).
    gate_reason: str | None = None
    gate_waits: int = 0
    analysed: bool = False
    runs: int = 1
    # Highest outbox sequence counted per outbox key; earlier runs' marks are loaded on open.
    watermarks: dict[str, int] = field(default_factory=dict)
    watermarks_loaded: bool = False
    # The newest failure's occurred_at: a success resolves only failures that happened before it.
    last_failure_at: datetime | None = None
    # Who paused or resumed the incident and why: the reason of the next recorded transition.
    operator_note: str | None = None
    # Typed responder targets (patched: responder-targets): what was paged, to mirror to it.
    responders: bool = False
    paged: list[TargetRef] = field(default_factory=list)
    # Lifecycle event → the type of each notification target told about it.
    notifications: dict[str, list[str]] = field(default_factory=dict)
    # Lifecycle events already mirrored and notified, and the responder system behind the
    # acknowledge or resolve ("pagerduty", "opsgenie"), which is not told again.
    announced: list[str] = field(default_factory=list)
    acknowledged_origin: str = ""
    closed_origin: str = ""
    # Failure times (µs since the epoch), the earliest few kept for an `open_after` threshold.
    failure_times_us: list[int] = field(default_factory=list)
    # When an `open_after` threshold closes the incident unless met; set once it is met.
    threshold_deadline: datetime | None = None
    threshold_met: bool = False
    # Approval gates (patched: approval-gates): the highest attempt an operator approved, when
    # the pending approval times out, and a rejection's reason until the incident escalates.
    approved_attempt: int = 0
    approval_due_at: datetime | None = None
    approval_refusal: str | None = None
    # Flap damping (patched: flap-damping): remediation waits until `flap_quiet_until`, which
    # moves when `failure_count` passes `flap_failures`; the newest success seen meanwhile;
    # `flap_settled` once the hold is over.
    flap_quiet_until: datetime | None = None
    flap_failures: int = 0
    flap_success_at: datetime | None = None
    flap_settled: bool = False
    # Vendor incidents (patched: vendor-parents): the vendor incident holding this one, whether
    # it still holds it, and whether it asked this incident to make its probe.
    parent_workflow_id: str = ""
    parent_incident_id: str = ""
    parent_open: bool = False
    vendor_probe: bool = False


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
    status: IncidentStatus
    severity: Severity
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
    flap_count: int = 0  # earlier incidents of this signature resolved within the flap window


@dataclass
class IncidentResult:
    """How the incident ended."""

    status: IncidentStatus
    attempts: int
    event_count: int
    reason: str | None
