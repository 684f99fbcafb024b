"""How `IncidentWorkflow` calls its activities: timeouts, retry policies and Web UI summaries.

Short steps run as local activities (no round trip to the server); the callback and the page
are ordinary activities that heartbeat and can be cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

from workflows.activity_payloads import (
    ActionRequest,
    Analysis,
    AttemptStart,
    CallbackOutcome,
    CallbackRequest,
    Classification,
    DecisionRequest,
    DeliveryOutcome,
    DeliveryRequest,
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
from workflows.opening_payloads import OpenAndAssessRequest, OpenAndAssessResult

with workflow.unsafe.imports_passed_through():
    from activities.analysis import AnalysisActivities
    from activities.escalation import EscalationActivities
    from activities.opening import OpeningActivities
    from activities.records import IncidentRecords
    from activities.remediation import RemediationActivities
    from activities.responders import ResponderActivities
    from activities.safety import SafetyGate

LOCAL_TIMEOUT = timedelta(seconds=10)
# Projections and decisions must land eventually: retry (idempotent) writes while the
# database is down rather than failing the incident.
UNTIL_STORED = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
GATE_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
# A page should survive a short outage of its target or of PostgreSQL; after that the failure
# is recorded and the next level follows on schedule.
ESCALATION_RETRY = RetryPolicy(
    maximum_attempts=6,
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
)
# Attempts belong to the workflow: each has its own idempotency key and action row,
# so Temporal must never re-run a callback on its own.
SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)
CALLBACK_HEARTBEAT = timedelta(seconds=5)
PAGE_TIMEOUT = timedelta(seconds=30)
ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")


async def run_local(
    method: Callable[[Any, ArgT], Awaitable[ResultT]],
    arg: ArgT,
    summary: str,
    retry_policy: RetryPolicy = UNTIL_STORED,
    timeout: timedelta = LOCAL_TIMEOUT,
) -> ResultT:
    """Run a short step as a local activity, retried until stored unless told otherwise."""
    return await workflow.execute_local_activity_method(
        method,
        arg,
        start_to_close_timeout=timeout,
        retry_policy=retry_policy,
        summary=summary,
    )


async def record_incident(req: RecordIncidentRequest) -> str:
    """Write the incident projection; return its id."""
    return await run_local(IncidentRecords.record_incident, req, f"record incident: {req.status}")


async def open_incident(req: OpenIncidentRequest) -> OpenIncidentResult:
    """Open a new run's incident (or learn that its events were all counted before)."""
    return await run_local(
        IncidentRecords.open_incident, req, "open incident: earlier runs + latest success"
    )


async def open_and_assess(req: OpenAndAssessRequest) -> OpenAndAssessResult:
    """Open a new run's incident, then classify, analyse and plan it, in one step."""
    return await run_local(
        OpeningActivities.open_and_assess, req, "open incident + classify, analyse, plan"
    )


async def record_action(req: ActionRequest) -> None:
    """Write or advance an action row."""
    await run_local(
        IncidentRecords.record_action,
        req,
        f"action {req.action_type} #{req.attempt}: {req.status}",
    )


async def start_attempt(req: AttemptStart) -> None:
    """Store an attempt's pending action row and the incident's projection in one step."""
    action = req.action
    await run_local(
        IncidentRecords.start_attempt,
        req,
        f"action {action.action_type} #{action.attempt}: {action.status} + record incident",
    )


async def classify(req: DecisionRequest) -> Classification:
    """Run the rules and the mock detector."""
    return await run_local(
        AnalysisActivities.classify, req, "classify: error catalogue + mock detector"
    )


async def analyse(req: DecisionRequest) -> Analysis:
    """Run the mock root-cause analyser and similarity search."""
    return await run_local(AnalysisActivities.analyse, req, "analyse: mock RCA + similar incidents")


async def plan(req: DecisionRequest) -> Plan:
    """Choose the retry policy and escalation ladder."""
    return await run_local(AnalysisActivities.plan, req, "plan: retry policy + escalation")


async def check_gate(req: GateRequest) -> GateDecision:
    """Ask the safety gate about the next attempt."""
    return await run_local(SafetyGate.check_gate, req, f"safety gate for retry #{req.attempt}")


async def record_outcome(req: OutcomeRecord) -> str:
    """Count the callback's outcome in the vendor's circuit breaker; the breaker state after."""
    return await run_local(
        SafetyGate.record_outcome, req, f"breaker {req.vendor}: {req.outcome}", GATE_RETRY
    )


def start_callback(req: CallbackRequest, summary: str) -> workflow.ActivityHandle[CallbackOutcome]:
    """Start the (cancellable, heartbeating) callback activity."""
    return workflow.start_activity_method(
        RemediationActivities.call_callback,
        req,
        start_to_close_timeout=timedelta(seconds=req.timeout_s + 10),
        heartbeat_timeout=CALLBACK_HEARTBEAT,
        retry_policy=SINGLE_ATTEMPT,
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        summary=summary,
    )


async def send_escalation(req: EscalationRequest) -> EscalationOutcome:
    """Page one escalation level."""
    return await workflow.execute_activity_method(
        EscalationActivities.send_escalation,
        req,
        start_to_close_timeout=PAGE_TIMEOUT,
        heartbeat_timeout=CALLBACK_HEARTBEAT,
        retry_policy=ESCALATION_RETRY,
        summary=f"escalate L{req.level} → {req.step.name}",
    )


async def deliver(req: DeliveryRequest) -> DeliveryOutcome:
    """Send one lifecycle event to one responder target, retried by Temporal `req.tries` times."""
    where = f"L{req.level}" if req.level else "notify"
    return await workflow.execute_activity_method(
        ResponderActivities.deliver,
        req,
        start_to_close_timeout=PAGE_TIMEOUT,
        heartbeat_timeout=CALLBACK_HEARTBEAT,
        retry_policy=RetryPolicy(
            maximum_attempts=req.tries,
            initial_interval=timedelta(seconds=1),
            maximum_interval=timedelta(seconds=30),
        ),
        summary=f"{req.event} → {where} target {req.index}",
    )
