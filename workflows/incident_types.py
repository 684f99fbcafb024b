"""The former home of every `IncidentWorkflow` dataclass, kept so existing imports still work.

New code imports from where each name lives: `workflows.incident_state` (input, state, view,
result), `workflows.signal_payloads` (signal arguments), `workflows.activity_payloads`
(activity requests and answers) and `vocabulary` (statuses, event types, message names).
"""

from __future__ import annotations

from vocabulary import SignalName
from workflows.activity_payloads import (
    ActionRequest,
    Analysis,
    CallbackOutcome,
    CallbackRequest,
    Classification,
    DecisionRequest,
    EscalationOutcome,
    EscalationRequest,
    GateDecision,
    GateRequest,
    OpenIncidentRequest,
    OpenIncidentResult,
    OutcomeRecord,
    Plan,
    RecordIncidentRequest,
)
from workflows.incident_state import (
    EscalationStep,
    IncidentInput,
    IncidentResult,
    IncidentState,
    IncidentView,
    RetryPlan,
)
from workflows.signal_payloads import (
    AcknowledgeRequest,
    EventBatch,
    EventDigest,
    EventSummary,
    KillRequest,
    OperatorRequest,
    ResolveRequest,
)

DIGEST_SIGNAL = SignalName.EVENT_DIGEST

__all__ = [
    "DIGEST_SIGNAL",
    "AcknowledgeRequest",
    "ActionRequest",
    "Analysis",
    "CallbackOutcome",
    "CallbackRequest",
    "Classification",
    "DecisionRequest",
    "EscalationOutcome",
    "EscalationRequest",
    "EscalationStep",
    "EventBatch",
    "EventDigest",
    "EventSummary",
    "GateDecision",
    "GateRequest",
    "IncidentInput",
    "IncidentResult",
    "IncidentState",
    "IncidentView",
    "KillRequest",
    "OpenIncidentRequest",
    "OpenIncidentResult",
    "OperatorRequest",
    "OutcomeRecord",
    "Plan",
    "RecordIncidentRequest",
    "ResolveRequest",
    "RetryPlan",
]
