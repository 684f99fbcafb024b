"""Pure, deterministic helpers of `IncidentWorkflow`: backoff, event counting, reasons, views.

No Temporal calls: every function here takes plain values and is unit-tested directly.
"""

from __future__ import annotations

import bisect
import math
from datetime import UTC, datetime, timedelta

from vocabulary import (
    FAILURE_TYPES,
    SUCCESS_TYPES,
    TERMINAL_STATUSES,
    GateVerdict,
    IncidentStatus,
)
from workflows.activity_payloads import CallbackOutcome, GateDecision
from workflows.incident_state import IncidentInput, IncidentState, IncidentView, RetryPlan
from workflows.signal_payloads import EventBatch, EventDigest, OperatorRequest

RECENT_EVENT_IDS = 4096
# Failure times kept for an `open_after` threshold: the latest ones (at least its `count`).
KEPT_FAILURE_TIMES = 100
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# No wait is longer than this, whatever a server's Retry-After or a policy says: a timer
# beyond it would only ever be a bug, and an absurd one overflows `timedelta`.
MAX_DELAY_S = 30 * 24 * 3600.0


def backoff_s(plan: RetryPlan, attempt: int, unit_random: float) -> float:
    """interval = min(initial × multiplier^(attempt-1), max) plus 0–jitter of it."""
    base = min(plan.initial_interval_s * plan.multiplier ** (attempt - 1), plan.max_interval_s)
    return round(base + base * plan.jitter * unit_random, 3)


def bounded_delay(delay_s: float) -> float:
    """Clamp a wait to [0, MAX_DELAY_S]; a non-finite value counts as no wait."""
    if not math.isfinite(delay_s):
        return 0.0
    return min(max(delay_s, 0.0), MAX_DELAY_S)


def retry_delay(
    plan: RetryPlan, attempt: int, unit_random: float, retry_after_s: float | None
) -> float:
    """The wait before the next attempt: the backoff, or the server's Retry-After if longer.

    Retry-After is honoured only up to the policy's `max_interval_s`, so a hostile or broken
    server cannot park an incident for longer than the policy allows.
    """
    delay = backoff_s(plan, attempt, unit_random)
    if retry_after_s is not None and math.isfinite(retry_after_s):
        delay = max(delay, min(retry_after_s, plan.max_interval_s))
    return bounded_delay(delay)


def apply_digest(state: IncidentState, digest: EventDigest) -> datetime | None:
    """Count the digest's events not counted yet; return the newest new success's time."""
    mark = state.watermarks.get(digest.source, 0)
    newest_success: datetime | None = None
    for seq, kind, occurred_us in zip(digest.seqs, digest.kinds, digest.occurred_us, strict=True):
        if seq <= mark:
            continue  # a redelivery: counted when it first arrived
        at = EPOCH + timedelta(microseconds=occurred_us)
        _count(state, at)
        if kind == "f":
            state.failure_count += 1
            keep_failure_time(state, occurred_us)
            if state.last_failure_at is None or at > state.last_failure_at:
                state.last_failure_at = at
        elif newest_success is None or at > newest_success:
            newest_success = at
    if digest.seqs:
        state.watermarks[digest.source] = max(mark, digest.seqs[-1])
    latest, current = digest.latest_failure, state.latest_event
    # An older event never replaces the payload of a newer one, whatever the arrival order.
    if (
        latest is not None
        and latest.seq > mark
        and (current is None or latest.occurred_at >= current.occurred_at)
    ):
        state.latest_event = latest
    return newest_success


def success_resolves(state: IncidentState, success_at: datetime) -> bool:
    """A success resolves the incident only if no failure happened after it."""
    return state.last_failure_at is None or success_at >= state.last_failure_at


def keep_failure_time(state: IncidentState, occurred_us: int) -> None:
    """Keep a failure's time, in order, among the latest `KEPT_FAILURE_TIMES`."""
    bisect.insort(state.failure_times_us, occurred_us)
    del state.failure_times_us[:-KEPT_FAILURE_TIMES]


def _count(state: IncidentState, at: datetime) -> None:
    state.event_count += 1
    if state.first_seen_at is None or at < state.first_seen_at:
        state.first_seen_at = at
    if state.last_seen_at is None or at > state.last_seen_at:
        state.last_seen_at = at


def apply_events(state: IncidentState, batch: EventBatch) -> bool:
    """Legacy signal: count new events once each (by id); True when a success arrived."""
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
            keep_failure_time(state, (event.occurred_at - EPOCH) // timedelta(microseconds=1))
            if state.last_failure_at is None or event.occurred_at > state.last_failure_at:
                state.last_failure_at = event.occurred_at
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


def visible_status(state: IncidentState) -> IncidentStatus:
    """Return the lifecycle status an operator sees (`paused` overlays live states)."""
    return IncidentStatus.PAUSED if state.paused and not is_terminal(state) else state.status


def gate_wait_reason(cause: str, wait_s: float) -> str:
    """Explain a wait the safety gate asked for: "waiting: stripe circuit open, 28 s"."""
    return f"waiting: {cause}, {math.ceil(bounded_delay(wait_s)):,} s"


def gate_reason(decision: GateDecision) -> str | None:
    """What the incident shows of a gate answer: a wait with its length, a denial, or None."""
    if decision.verdict == GateVerdict.WAIT:
        return gate_wait_reason(decision.reason, decision.wait_s)
    return decision.reason or None


def waiting_for_gate(state: IncidentState) -> bool:
    """Tell whether the incident waits because the safety gate said wait (not a backoff)."""
    return state.status == IncidentStatus.WAITING and state.gate_waits > 0


def operator_note(verb: str, request: OperatorRequest) -> str:
    """Name who paused or resumed, and why if they said: "paused by alice: vendor incident"."""
    note = f"{verb} by {request.by}"
    return f"{note}: {request.reason}" if request.reason else note


def waiting_for_threshold(state: IncidentState) -> bool:
    """Tell whether remediation waits for a policy's `open_after` threshold."""
    held = state.threshold_deadline is not None and not state.threshold_met
    return held and state.status == IncidentStatus.WAITING


def is_flapping(plan: RetryPlan) -> bool:
    """Tell whether the plan's re-opens reach its flap damping's count (never when off)."""
    return plan.flap_reopens > 0 and plan.flap_count >= plan.flap_reopens


def flapping_reason(plan: RetryPlan) -> str:
    """Why an incident is flapping: "re-opened 5 times within 3600 s; remediation waits …"."""
    return (
        f"re-opened {plan.flap_count} times within {plan.flap_within_s:g} s; "
        f"remediation waits for {plan.flap_quiet_s:g} s without a failure"
    )


def transition_reason(state: IncidentState) -> str:
    """Why the incident is in its status, as stored with a transition.

    A close reason first, then an operator's pause or resume, then the gate's (or an open
    threshold's) wait while the incident waits for it, then the latest action or decision.
    """
    held = state.gate_reason if waiting_for_gate(state) else None
    if held is None and waiting_for_threshold(state):
        held = state.next_action  # "remediation starts at 3 failures within 60 s (2 so far)"
    if held is None and state.status == IncidentStatus.FLAPPING and state.plan:
        held = flapping_reason(state.plan)
    reason = (
        state.close_reason
        or state.operator_note
        or held
        or state.latest_action
        or state.latest_decision
    )
    return (reason or "")[:2000]


def attempt_summary(attempt: int, outcome: CallbackOutcome) -> str:
    """Describe how one callback attempt ended: "retry #2: retryable (HTTP 503)"."""
    how = f"HTTP {outcome.http_status}" if outcome.http_status else outcome.detail
    return f"retry #{attempt}: {outcome.outcome} ({how})"


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
        flap_count=state.plan.flap_count if state.plan else 0,
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
