"""Pure builders of the requests `IncidentWorkflow` sends to its activities.

Each takes the incident's input and state (and the workflow's ids, which only the workflow
knows), so what an activity is asked can be tested without a worker.
"""

from __future__ import annotations

from typing import Any

from vocabulary import ActionStatus, ActionType
from workflows.activity_payloads import (
    ActionRequest,
    CallbackOutcome,
    CallbackRequest,
    DecisionRequest,
    DeliveryRequest,
    EscalationRequest,
    GateRequest,
    RecordIncidentRequest,
)
from workflows.incident_logic import transition_reason, visible_status
from workflows.incident_state import EscalationStep, IncidentInput, IncidentState

# The escalation ladder's page; any other delivery event is a follow-up or a notification.
TRIGGER = "trigger"


def delivery_key(req: DeliveryRequest) -> str:
    """A delivery's idempotency key and action key (a level's first page keeps its old key)."""
    if req.event == TRIGGER:
        suffix = "" if req.index == 0 else f":{'fallback' if req.index < 0 else req.index}"
        return f"{req.incident_id}:escalate:{req.level}{suffix}"
    where = f"L{req.level}" if req.level else "notify"
    return f"{req.incident_id}:{req.event}:{where}:{req.index}"


def attempt_key(state: IncidentState, attempt: int) -> str:
    """The idempotency key of one callback attempt: `{incident_id}:{attempt}`."""
    return f"{state.incident_id}:{attempt}"


def page_key(state: IncidentState) -> str:
    """The idempotency key of the current escalation level's page."""
    return f"{state.incident_id}:escalate:{state.escalation_level}"


def projection_request(
    inp: IncidentInput, state: IncidentState, *, workflow_id: str, run_id: str, closed: bool
) -> RecordIncidentRequest:
    """The incident row as the workflow sees it now, with the reason of its status."""
    return RecordIncidentRequest(
        tenant_id=inp.tenant_id,
        workflow_id=workflow_id,
        run_id=run_id,
        source_workflow=inp.source_workflow,
        step=inp.step,
        signature=inp.signature,
        error_code=state.error_code or inp.error_code,
        vendor=inp.vendor,
        status=visible_status(state),
        severity=state.severity,
        category=state.category,
        event_count=state.event_count,
        attempts=state.attempts,
        first_seen_at=state.first_seen_at,
        last_seen_at=state.last_seen_at,
        closed=closed,
        reason=transition_reason(state),
        watermarks=dict(state.watermarks),
    )


def decision_request(
    inp: IncidentInput, state: IncidentState, *, workflow_id: str
) -> DecisionRequest:
    """What classification, analysis and planning are told about the incident."""
    latest = state.latest_event
    return DecisionRequest(
        tenant_id=inp.tenant_id,
        incident_id=state.incident_id,
        workflow_id=workflow_id,
        source_workflow=inp.source_workflow,
        step=inp.step,
        error_code=inp.error_code,
        error_message=latest.error_message if latest else None,
        vendor=inp.vendor,
        event_count=state.event_count,
        failure_count=state.failure_count,
        event_id=latest.event_id if latest else "",
    )


def gate_request(
    inp: IncidentInput, state: IncidentState, *, count_vendor: bool = False
) -> GateRequest:
    """Ask the safety gate about the next attempt."""
    assert state.plan is not None
    return GateRequest(
        tenant_id=inp.tenant_id,
        incident_id=state.incident_id,
        source_workflow=inp.source_workflow,
        vendor=inp.vendor,
        attempt=state.attempts + 1,
        max_attempts=state.plan.max_attempts,
        waits=state.gate_waits,
        count_vendor=count_vendor,
    )


def callback_request(
    inp: IncidentInput, state: IncidentState, *, workflow_id: str, attempt: int
) -> CallbackRequest:
    """One callback attempt, by reference to the newest failure."""
    latest = state.latest_event
    return CallbackRequest(
        tenant_id=inp.tenant_id,
        incident_id=state.incident_id,
        workflow_id=workflow_id,
        attempt=attempt,
        idempotency_key=attempt_key(state, attempt),
        callback_url=state.callback_url,
        source_workflow=inp.source_workflow,
        step=inp.step,
        vendor=inp.vendor,
        error_code=state.error_code,
        error_message=None,
        payload=None,
        correlation_id=(latest.correlation_id if latest else "") or inp.correlation_id,
        timeout_s=state.call_timeout_s,
        event_id=latest.event_id if latest else "",
    )


def retry_action(
    inp: IncidentInput,
    state: IncidentState,
    *,
    attempt: int,
    status: ActionStatus,
    outcome: CallbackOutcome | None = None,
) -> ActionRequest:
    """The action row of one callback attempt, pending or with the outcome it ended with."""
    result: dict[str, Any] = outcome.stored() if outcome else {}
    return ActionRequest(
        tenant_id=inp.tenant_id,
        incident_id=state.incident_id,
        action_type=ActionType.RETRY,
        attempt=attempt,
        idempotency_key=attempt_key(state, attempt),
        status=status,
        parameters={"callback_url": state.callback_url},
        result=result,
    )


def escalation_request(
    inp: IncidentInput, state: IncidentState, *, workflow_id: str, step: EscalationStep
) -> EscalationRequest:
    """Page the current escalation level."""
    vendor = f" at {inp.vendor}" if inp.vendor else ""
    return EscalationRequest(
        tenant_id=inp.tenant_id,
        incident_id=state.incident_id,
        workflow_id=workflow_id,
        level=state.escalation_level,
        step=step,
        summary=f"{inp.source_workflow} {state.error_code or 'error'}{vendor}: "
        f"{state.latest_action or ''}",
        source_workflow=inp.source_workflow,
        error_code=state.error_code,
        vendor=inp.vendor,
        event_count=state.event_count,
        attempts=state.attempts,
        correlation_id=inp.correlation_id,
    )


def failed_page_action(
    inp: IncidentInput, state: IncidentState, *, step: EscalationStep, detail: str
) -> ActionRequest:
    """The action row of a page that could not be sent at all."""
    return ActionRequest(
        tenant_id=inp.tenant_id,
        incident_id=state.incident_id,
        action_type=ActionType.ESCALATE,
        attempt=state.escalation_level,
        idempotency_key=page_key(state),
        status=ActionStatus.FAILED,
        parameters={"level": step.name},
        result={"delivered": False, "detail": detail},
    )


def delivery_request(
    inp: IncidentInput,
    state: IncidentState,
    *,
    workflow_id: str,
    event: str,
    target: tuple[int, int],
    tries: int,
    step: EscalationStep | None = None,
) -> DeliveryRequest:
    """One event for one target, named by (level, index): level 0 is a notification target."""
    level, index = target
    vendor = f" at {inp.vendor}" if inp.vendor else ""
    latest = state.latest_event
    return DeliveryRequest(
        tenant_id=inp.tenant_id,
        incident_id=state.incident_id,
        workflow_id=workflow_id,
        source_workflow=inp.source_workflow,
        event=event,
        level=level,
        index=index,
        tries=tries,
        severity=str(step.severity) if step else "info",
        level_name=step.name if step else "",
        summary=f"{inp.source_workflow} {state.error_code or 'error'}{vendor}: "
        f"{state.latest_action or ''}",
        error_code=state.error_code,
        vendor=inp.vendor,
        event_count=state.event_count,
        attempts=state.attempts,
        correlation_id=inp.correlation_id,
        status=str(state.status),
        last_error=latest.error_message if latest else None,
    )
