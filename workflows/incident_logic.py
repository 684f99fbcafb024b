"""Pure, deterministic helpers of `IncidentWorkflow`: backoff, event bookkeeping, the view."""

from __future__ import annotations

from workflows.incident_types import (
    FAILURE_TYPES,
    SUCCESS_TYPES,
    TERMINAL_STATUSES,
    EventBatch,
    IncidentInput,
    IncidentState,
    IncidentView,
    RetryPlan,
)

RECENT_EVENT_IDS = 4096


def backoff_s(plan: RetryPlan, attempt: int, unit_random: float) -> float:
    """interval = min(initial × multiplier^(attempt-1), max) plus 0–jitter of it (DESIGN §6)."""
    base = min(plan.initial_interval_s * plan.multiplier ** (attempt - 1), plan.max_interval_s)
    return round(base + base * plan.jitter * unit_random, 3)


def apply_events(state: IncidentState, batch: EventBatch) -> bool:
    """Count new events once each (by id); return True when a success event arrived."""
    seen = set(state.recent_event_ids)
    succeeded = False
    for event in batch.events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        state.recent_event_ids.append(event.event_id)
        state.event_count += 1
        if state.first_seen_at is None or event.occurred_at < state.first_seen_at:
            state.first_seen_at = event.occurred_at
        if state.last_seen_at is None or event.occurred_at > state.last_seen_at:
            state.last_seen_at = event.occurred_at
        if event.event_type in FAILURE_TYPES:
            state.failure_count += 1
            if event.payload is not None or state.latest_event is None:
                state.latest_event = event
        elif event.event_type in SUCCESS_TYPES:
            succeeded = True
    # Redeliveries come from the outbox retrying a recent group: a bounded window suffices.
    del state.recent_event_ids[:-RECENT_EVENT_IDS]
    return succeeded


def is_terminal(state: IncidentState) -> bool:
    """Tell whether the incident has ended."""
    return state.status in TERMINAL_STATUSES


def visible_status(state: IncidentState) -> str:
    """Return the lifecycle status an operator sees (`paused` overlays live states)."""
    return "paused" if state.paused and not is_terminal(state) else state.status


def incident_view(inp: IncidentInput, state: IncidentState, workflow_id: str) -> IncidentView:
    """Build the `status` query answer."""
    return IncidentView(
        workflow_id=workflow_id,
        incident_id=state.incident_id,
        status=visible_status(state),
        severity=state.severity,
        category=state.category,
        source_workflow=inp.source_workflow,
        step=inp.step,
        signature=inp.signature,
        error_code=state.error_code or inp.error_code,
        vendor=inp.vendor,
        event_count=state.event_count,
        attempts=state.attempts,
        max_attempts=state.plan.max_attempts if state.plan else None,
        paused=state.paused,
        first_seen_at=state.first_seen_at,
        last_seen_at=state.last_seen_at,
        next_action=state.next_action,
        next_action_at=state.next_action_at,
        latest_decision=state.latest_decision,
        latest_action=state.latest_action,
        gate_reason=state.gate_reason,
        escalation_level=state.escalation_level,
        acknowledged_by=state.acknowledged_by,
        close_reason=state.close_reason,
        runs=state.runs,
    )


def details_markdown(inp: IncidentInput, state: IncidentState) -> str:
    """Render `set_current_details`: the incident's story so far, for the Web UI."""
    plan = state.plan
    lines = [
        f"**{visible_status(state)}** · severity {state.severity} · {state.category}",
        f"{inp.source_workflow} / {inp.step or '-'} · {state.error_code or inp.error_code or '-'}"
        f" · {inp.vendor or '-'}",
        f"events: {state.event_count} · attempts: {state.attempts}"
        + (f"/{plan.max_attempts} ({plan.name})" if plan else ""),
    ]
    if state.next_action:
        when = f" at {state.next_action_at:%H:%M:%S} UTC" if state.next_action_at else ""
        lines.append(f"next: {state.next_action}{when}")
    for label, value in (
        ("gate", state.gate_reason),
        ("decision", state.latest_decision),
        ("action", state.latest_action),
        ("closed", state.close_reason),
    ):
        if value:
            lines.append(f"{label}: {value}")
    return "  \n".join(lines)
