"""The words of AWFDRS, defined once: statuses, event types, severities, verdicts, message names.

Every module (the workflow, activities, the API, SQL built in code, the CLI) uses these names
instead of spelling the strings itself. They are `StrEnum`s, so each member is also the plain
string stored in PostgreSQL, sent in JSON and recorded in Temporal histories: changing a value
here is a data migration, not a rename.
"""

from __future__ import annotations

from enum import StrEnum


class IncidentStatus(StrEnum):
    """The lifecycle of an incident (`paused` overlays any live state until resumed)."""

    OPEN = "open"
    ANALYZING = "analyzing"
    REMEDIATING = "remediating"
    WAITING = "waiting"
    AWAITING_APPROVAL = "awaiting_approval"  # an approval gate holds the next callback
    # The signature keeps resolving and re-opening: remediation waits for a quiet period.
    FLAPPING = "flapping"
    PAUSED = "paused"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    KILLED = "killed"
    SUPPRESSED = "suppressed"
    # Fewer failures than the retry policy's `open_after` threshold within its window.
    BELOW_THRESHOLD = "below_threshold"


TERMINAL_STATUSES = frozenset(
    {
        IncidentStatus.RESOLVED,
        IncidentStatus.KILLED,
        IncidentStatus.SUPPRESSED,
        IncidentStatus.BELOW_THRESHOLD,
    }
)


class EventType(StrEnum):
    """What a client reports about one step or run of its workflow."""

    STEP_FAILED = "step.failed"
    STEP_SUCCEEDED = "step.succeeded"
    WORKFLOW_FAILED = "workflow.failed"
    WORKFLOW_SUCCEEDED = "workflow.succeeded"
    WORKFLOW_STARTED = "workflow.started"


FAILURE_TYPES = frozenset({EventType.STEP_FAILED, EventType.WORKFLOW_FAILED})
SUCCESS_TYPES = frozenset({EventType.STEP_SUCCEEDED, EventType.WORKFLOW_SUCCEEDED})


class Severity(StrEnum):
    """How bad an incident is, from the error catalogue."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class PageSeverity(StrEnum):
    """The severity of an escalation page, on PagerDuty's Events v2 scale."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class ActionType(StrEnum):
    """What an action row records: a callback attempt, a page, or another responder delivery."""

    RETRY = "retry"
    ESCALATE = "escalate"
    # A lifecycle follow-up to a paged target (acknowledge, resolve) or a notification.
    NOTIFY = "notify"


class ActionStatus(StrEnum):
    """An action row's lifecycle: pending → running → one of the final four."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # A dry-run workflow's call or page: recorded with what would have been sent, not sent.
    SKIPPED_DRY_RUN = "skipped_dry_run"


FINAL_ACTION_STATUSES = frozenset(
    {
        ActionStatus.SUCCEEDED,
        ActionStatus.FAILED,
        ActionStatus.CANCELLED,
        ActionStatus.SKIPPED_DRY_RUN,
    }
)


class WorkflowMode(StrEnum):
    """Whether a registered workflow's callbacks and pages are sent or only recorded."""

    LIVE = "live"
    DRY_RUN = "dry_run"  # the lifecycle runs; each call is an action with what it would send


class GateVerdict(StrEnum):
    """The safety gate's answer before an attempt."""

    PERMIT = "permit"
    WAIT = "wait"
    DENY = "deny"


class BreakerState(StrEnum):
    """A vendor circuit breaker's state; the `forced_*` states are an operator's."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"


class CallOutcome(StrEnum):
    """How one callback ended."""

    SUCCESS = "success"
    RETRYABLE = "retryable"
    FATAL = "fatal"
    CANCELLED = "cancelled"


class Remediation(StrEnum):
    """What intake says will happen to an event's incident."""

    NORMAL = "normal"
    SUPPRESSED = "suppressed"
    DEFERRED = "deferred"
    HELD = "held"  # a maintenance window in `hold` mode: the incident opens, its calls wait


class MaintenanceMode(StrEnum):
    """What a maintenance window does to matching failure events."""

    SUPPRESS = "suppress"  # stored, no incident
    HOLD = "hold"  # stored, the incident opens, remediation waits for the window's end


class SignalName(StrEnum):
    """Signals of `IncidentWorkflow` (also usable from the `temporal` CLI)."""

    EVENT_DIGEST = "event_digest"
    EVENTS = "events"  # the legacy form, still handled for histories and older dispatchers
    PAUSE = "pause"
    RESUME = "resume"
    KILL = "kill"
    RESOLVE = "resolve"
    ACKNOWLEDGE = "acknowledge"
    # From a vendor incident (VendorIncidentWorkflow) to its children.
    VENDOR_PROBE = "vendor_probe"
    VENDOR_RELEASE = "vendor_release"


class VendorSignal(StrEnum):
    """Signals of `VendorIncidentWorkflow`: children link and report probes; operators end it."""

    CHILD_LINKED = "child_linked"
    PROBE_RESULT = "probe_result"
    KILL = "kill"
    RESOLVE = "resolve"


class UpdateName(StrEnum):
    """Updates of `IncidentWorkflow`: validated, so a call in the wrong state is refused."""

    APPROVE = "approve"
    REJECT = "reject"


class ApprovalMode(StrEnum):
    """Which callback attempts of a retry policy wait for an operator's approval."""

    NEVER = "never"
    FIRST = "first"  # the first attempt only; later attempts run without asking
    EVERY = "every"


class QueryName(StrEnum):
    """Queries of `IncidentWorkflow`."""

    STATUS = "status"


WORKFLOW_TYPE = "IncidentWorkflow"
# One per tenant and vendor while the vendor is degraded: `vendor:{tenant}:{vendor}`.
VENDOR_WORKFLOW_TYPE = "VendorIncidentWorkflow"
VENDOR_WORKFLOW_PREFIX = "vendor:"
