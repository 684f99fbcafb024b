"""The workflow's pure helpers, without a worker: backoff, counting, reasons and views."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from vocabulary import CallOutcome, EventType, GateVerdict, IncidentStatus, Severity
from workflows.activity_payloads import CallbackOutcome, GateDecision
from workflows.incident_logic import (
    EPOCH,
    MAX_DELAY_S,
    apply_digest,
    apply_events,
    attempt_summary,
    backoff_s,
    bounded_delay,
    details_markdown,
    gate_reason,
    incident_view,
    operator_note,
    retry_delay,
    success_resolves,
    transition_reason,
)
from workflows.incident_state import IncidentInput, IncidentState, RetryPlan
from workflows.signal_payloads import EventBatch, EventDigest, EventSummary, OperatorRequest

PLAN = RetryPlan("standard", 4, 10, 3, 100, 0.1)
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
INPUT = IncidentInput("tenant", "billing-sync", "sig", "charge-card", "VENDOR_TIMEOUT", "stripe")


def _us(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def _event(
    kind: EventType, at: datetime, *, seq: int = 0, payload: dict[str, str] | None = None
) -> EventSummary:
    return EventSummary(str(uuid.uuid4()), kind, at, payload=payload, seq=seq)


def _digest(*events: tuple[int, str, datetime], source: str = "incident:t:s") -> EventDigest:
    return EventDigest(
        source=source,
        seqs=[seq for seq, _, _ in events],
        kinds="".join(kind for _, kind, _ in events),
        occurred_us=[_us(at) for _, _, at in events],
    )


@pytest.mark.parametrize(
    ("attempt", "unit_random", "expected"),
    [(1, 0.0, 10.0), (2, 0.0, 30.0), (3, 0.0, 90.0), (4, 0.0, 100.0), (1, 1.0, 11.0)],
)
def test_backoff_grows_by_the_multiplier_up_to_the_cap_plus_jitter(
    attempt: int, unit_random: float, expected: float
) -> None:
    assert backoff_s(PLAN, attempt, unit_random) == expected


@pytest.mark.parametrize(
    ("delay", "expected"),
    [(-5.0, 0.0), (math.nan, 0.0), (math.inf, 0.0), (12.5, 12.5), (1e12, MAX_DELAY_S)],
)
def test_bounded_delay_clamps_to_a_sane_wait(delay: float, expected: float) -> None:
    assert bounded_delay(delay) == expected


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(None, 10.0), (5.0, 10.0), (60.0, 60.0), (10_000.0, 100.0), (math.inf, 10.0)],
)
def test_retry_after_wins_only_when_longer_and_never_beyond_the_policy(
    retry_after: float | None, expected: float
) -> None:
    assert retry_delay(PLAN, 1, 0.0, retry_after) == expected


def test_a_digest_counts_each_sequence_once_and_keeps_the_newest_failure() -> None:
    state = IncidentState()
    older, newer = T0, T0 + timedelta(seconds=5)
    first = _digest((1, "f", newer), (2, "f", older))
    first.latest_failure = _event(EventType.STEP_FAILED, newer, seq=1)
    assert apply_digest(state, first) is None
    again = _digest((1, "f", newer), (2, "f", older), (3, "s", newer + timedelta(seconds=1)))
    again.latest_failure = _event(EventType.STEP_FAILED, older, seq=2)  # redelivered: ignored
    success_at = apply_digest(state, again)
    assert (state.event_count, state.failure_count) == (3, 2)
    assert success_at == newer + timedelta(seconds=1)
    assert state.watermarks == {"incident:t:s": 3}
    assert (state.first_seen_at, state.last_failure_at) == (older, newer)
    assert state.latest_event is first.latest_failure


def test_legacy_events_count_once_by_id_and_report_a_success() -> None:
    state = IncidentState()
    failed = _event(EventType.STEP_FAILED, T0, payload={"invoice": "inv-1"})
    assert not apply_events(state, EventBatch([failed, failed]))
    succeeded = _event(EventType.STEP_SUCCEEDED, T0 + timedelta(seconds=1))
    assert apply_events(state, EventBatch([failed, succeeded]))
    assert (state.event_count, state.failure_count, state.latest_event) == (2, 1, failed)


def test_a_success_resolves_only_failures_that_happened_before_it() -> None:
    state = IncidentState(last_failure_at=T0)
    assert success_resolves(state, T0)
    assert success_resolves(state, T0 + timedelta(seconds=1))
    assert not success_resolves(state, T0 - timedelta(seconds=1))
    assert success_resolves(IncidentState(), T0)


@pytest.mark.parametrize(
    ("cause", "wait_s", "shown"),
    [
        ("stripe circuit open", 27.3, "stripe circuit open, 28 s"),
        ("stripe rate limit", 1.5, "stripe rate limit, 2 s"),
        ("hourly budget of 5 calls exhausted", 1800, "hourly budget of 5 calls exhausted, 1,800 s"),
        (
            "tenant's callbacks in flight at their cap",
            0.6,
            "tenant's callbacks in flight at their cap, 1 s",
        ),
    ],
)
def test_a_gate_wait_names_its_cause_and_length(cause: str, wait_s: float, shown: str) -> None:
    assert gate_reason(GateDecision(GateVerdict.WAIT, wait_s, cause)) == f"waiting: {shown}"


def test_a_denial_keeps_its_reason_and_a_permit_has_none() -> None:
    assert gate_reason(GateDecision(GateVerdict.DENY, reason="kill switch: x")) == "kill switch: x"
    assert gate_reason(GateDecision(GateVerdict.PERMIT)) is None


def test_operator_notes_name_who_and_why() -> None:
    assert operator_note("paused", OperatorRequest("alice", "vendor incident")) == (
        "paused by alice: vendor incident"
    )
    assert operator_note("resumed", OperatorRequest("bob")) == "resumed by bob"
    assert operator_note("paused", OperatorRequest()) == "paused by operator"


def test_the_transition_reason_prefers_close_then_operator_then_gate_then_action() -> None:
    state = IncidentState(
        status=IncidentStatus.WAITING,
        gate_waits=1,
        gate_reason="waiting: stripe circuit open, 28 s",
        latest_action="retry #1: retryable (HTTP 503)",
        latest_decision="classified",
    )
    assert transition_reason(state) == "waiting: stripe circuit open, 28 s"
    state.operator_note = "paused by alice"
    assert transition_reason(state) == "paused by alice"
    state.close_reason = "killed by operator"
    assert transition_reason(state) == "killed by operator"


def test_a_gate_reason_counts_only_while_waiting_for_the_gate() -> None:
    backoff = IncidentState(
        status=IncidentStatus.WAITING, gate_reason="stale", latest_action="retry #1: fatal (x)"
    )
    assert transition_reason(backoff) == "retry #1: fatal (x)"
    escalated = IncidentState(
        status=IncidentStatus.ESCALATED, gate_waits=2, gate_reason="waiting: x, 1 s"
    )
    assert transition_reason(escalated) == ""
    assert transition_reason(IncidentState(latest_action="a" * 3000)) == "a" * 2000


def test_an_attempt_summary_shows_the_http_status_or_the_detail() -> None:
    answered = CallbackOutcome(CallOutcome.RETRYABLE, 503, "HTTP 503: busy")
    assert attempt_summary(2, answered) == "retry #2: retryable (HTTP 503)"
    silent = CallbackOutcome(CallOutcome.RETRYABLE, None, "timed out after 10s")
    assert attempt_summary(3, silent) == "retry #3: retryable (timed out after 10s)"


def test_the_view_shows_paused_over_the_live_status_with_the_api_field_names() -> None:
    state = IncidentState(
        incident_id="i-1", status=IncidentStatus.WAITING, paused=True, plan=PLAN, attempts=2
    )
    view = incident_view(INPUT, state, "incident:tenant:sig")
    assert (view.status, view.paused, view.max_attempts) == (IncidentStatus.PAUSED, True, 4)
    assert (view.workflow_id, view.error_code, view.severity) == (
        "incident:tenant:sig",
        "VENDOR_TIMEOUT",
        Severity.MEDIUM,
    )
    state.status = IncidentStatus.KILLED
    assert incident_view(INPUT, state, "w").status == IncidentStatus.KILLED


def test_the_details_tell_the_story_so_far() -> None:
    state = IncidentState(
        status=IncidentStatus.WAITING,
        severity=Severity.HIGH,
        category="transient",
        event_count=3,
        attempts=1,
        plan=PLAN,
        next_action="gate check for retry #2 (stripe circuit open)",
        next_action_at=T0,
        gate_reason="waiting: stripe circuit open, 28 s",
        latest_action="retry #1: retryable (HTTP 503)",
    )
    assert details_markdown(INPUT, state).split("  \n") == [
        "**waiting** · severity high · transient",
        "billing-sync / charge-card · VENDOR_TIMEOUT · stripe",
        "events: 3 · attempts: 1/4 (standard)",
        "next: gate check for retry #2 (stripe circuit open) at 10:00:00 UTC",
        "gate: waiting: stripe circuit open, 28 s",
        "action: retry #1: retryable (HTTP 503)",
    ]
