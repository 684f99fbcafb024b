"""What `IncidentWorkflow` sends to its activities and what they answer.

Plain dataclasses only: imported by the workflow sandbox and the activities alike. Requests
carry references (ids, codes, statuses); activities read URLs, messages, payloads and secrets
from PostgreSQL when they act.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from vocabulary import ActionStatus, ActionType, CallOutcome, GateVerdict, IncidentStatus, Severity
from workflows.incident_state import EscalationStep, RetryPlan

# Why `open_incident` refuses a run whose every event an earlier run counted.
REDELIVERY = "redelivery: its events were already counted"


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
    status: IncidentStatus
    severity: Severity
    category: str | None
    event_count: int
    attempts: int
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    closed: bool = False
    # Why the status is what it is: stored with the transition when the status changed.
    reason: str = ""
    watermarks: dict[str, int] = field(default_factory=dict)
    # The status is unchanged but its cause is new (a gate wait after a backoff): store a row.
    new_cause: bool = False


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
    severity: Severity
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
    # Lifecycle event → the type of each notification target (none in older histories).
    notifications: dict[str, list[str]] = field(default_factory=dict)


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
    # Also count the open incidents naming the vendor (`degraded_after`), in the same query.
    count_vendor: bool = False


@dataclass
class GateDecision:
    """permit, wait(seconds, cause) or deny(reason); `kill` when a kill switch denies."""

    verdict: GateVerdict
    wait_s: float = 0.0
    # A wait's cause ("stripe circuit open") or a denial's reason; empty for a permit.
    reason: str = ""
    kill: bool = False
    probe: bool = False
    # A deny because the workflow or tenant was deactivated: the incident ends `suppressed`.
    suppress: bool = False
    # A wait because the vendor's circuit is open (not forced): a vendor incident holds it.
    circuit_open: bool = False
    # A wait because enough incidents name the vendor (`count_vendor`): link, then held.
    vendor_degraded: bool = False


@dataclass
class OutcomeRecord:
    """A callback outcome to count in the vendor's circuit breaker."""

    tenant_id: str
    vendor: str
    outcome: CallOutcome
    probe: bool = False
    # The attempt's idempotency key: an attempt's outcome is counted at most once ("" : not
    # de-duplicated, as histories before lean-attempt ask).
    attempt_key: str = ""


@dataclass
class ActionRequest:
    """Create an action row (pending) or move it to a final status."""

    tenant_id: str
    incident_id: str
    action_type: ActionType
    attempt: int
    idempotency_key: str
    status: ActionStatus
    parameters: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttemptStart:
    """An attempt about to run: its pending action row and the incident's projection."""

    action: ActionRequest
    projection: RecordIncidentRequest


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
    # Count the outcome of a call made in the vendor's circuit breaker, in the same activity.
    count_breaker: bool = False
    probe: bool = False


@dataclass
class CallbackOutcome:
    """How a callback ended."""

    outcome: CallOutcome
    http_status: int | None = None
    detail: str = ""
    retry_after_s: float | None = None
    # The breaker's state after counting this outcome (`count_breaker`); "" when not counted.
    breaker: str = ""

    def stored(self) -> dict[str, Any]:
        """The outcome as an action row's result stores it (the breaker is not the call's)."""
        fields = asdict(self)
        del fields["breaker"]
        return fields


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


@dataclass
class DeliveryRequest:
    """Send one lifecycle event to one responder target, named by reference.

    `level` and `index` point into the workflow's escalation policy (a level's targets, -1
    its fallback) or, with `level` 0, into the notification targets of `event`; the activity
    reads the target and its credential from PostgreSQL when it sends.
    """

    tenant_id: str
    incident_id: str
    workflow_id: str
    source_workflow: str
    event: str  # trigger | acknowledge | resolve, or a LifecycleEvent for a notification
    level: int
    index: int
    tries: int  # attempts before the delivery counts as failed
    severity: str
    level_name: str
    summary: str
    error_code: str | None
    vendor: str | None
    event_count: int
    attempts: int
    correlation_id: str
    status: str = ""
    last_error: str | None = None


@dataclass
class DeliveryOutcome:
    """Whether the target took the event, with its HTTP status when one came back."""

    delivered: bool
    detail: str = ""
    http_status: int | None = None
