"""`IncidentWorkflow`: one incident's life, from first failure to resolution.

open → analyzing → remediating ⇄ waiting → resolved; → escalated → acknowledged → resolved;
→ flapping (flap_damping.py) → remediating or resolved;
`paused` overlays any live state until `resume`; `killed`, `suppressed` and
`below_threshold` (a policy's `open_after` not reached: open_threshold.py) are terminal.
docs/ARCHITECTURE.md describes its contract with the dispatcher, the API and operators.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import is_cancelled_exception

# These modules hold only deterministic code and dataclasses: sharing them across runs saves
# the sandbox re-importing them for every workflow (CPU) and every cached run (memory).
with workflow.unsafe.imports_passed_through():
    from vocabulary import (
        WORKFLOW_TYPE,
        ActionStatus,
        CallOutcome,
        GateVerdict,
        IncidentStatus,
        QueryName,
        SignalName,
    )
    from workflows import activity_calls as calls
    from workflows import activity_requests as requests
    from workflows import incident_logic as logic
    from workflows import patches
    from workflows.approval_gate import ApprovalGate
    from workflows.callback_attempt import CallbackAttempt
    from workflows.escalation_ladder import EscalationLadder
    from workflows.event_intake import EventIntake
    from workflows.flap_damping import FlapDamping
    from workflows.incident_assessment import IncidentAssessment
    from workflows.incident_opening import IncidentOpening
    from workflows.incident_state import (
        IncidentInput,
        IncidentResult,
        IncidentState,
        IncidentView,
    )
    from workflows.incident_tracker import IncidentTracker, count_incident
    from workflows.incident_waits import IncidentWaits
    from workflows.open_threshold import OpenThreshold
    from workflows.responders import Responders
    from workflows.signal_payloads import (
        AcknowledgeRequest,
        EventBatch,
        EventDigest,
        KillRequest,
        OperatorRequest,
        ResolveRequest,
    )
    from workflows.vendor_link import VendorLink


@workflow.defn(name=WORKFLOW_TYPE)
class IncidentWorkflow:
    """Classifies, retries through the client's callback, escalates; steered by signals."""

    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        self._inp = inp
        self._state: IncidentState = inp.state or IncidentState()
        self._tracker = IncidentTracker(inp, self._state)
        self._intake = EventIntake(self._state, self._tracker)
        self._opening = IncidentOpening(inp, self._intake)
        self._waits = IncidentWaits(inp, self._state, self._tracker)
        self._threshold = OpenThreshold(self._state, self._tracker, self._waits)
        self._responders = Responders(inp, self._state)
        self._flap = FlapDamping(
            self._state, self._tracker, self._waits, self._responders, self._threshold
        )
        self._assessment = IncidentAssessment(
            inp, self._state, self._tracker, self._opening, self._flap
        )
        self._escalation = EscalationLadder(
            inp, self._state, self._tracker, self._waits, self._responders
        )
        # Its `approve` and `reject` updates are registered by the gate (approval_gate.py).
        self._approval = ApprovalGate(self._state, self._tracker, self._waits).installed()
        self._callback = CallbackAttempt(inp, self._state)
        self._vendor = VendorLink(inp, self._state, self._tracker, self._waits).installed()

    @workflow.run
    async def run(self, _inp: IncidentInput) -> IncidentResult:
        """Drive the incident until it is resolved, killed or suppressed."""
        state = self._state
        try:
            if state.incident_id:
                self._intake.take_inbox()  # a continued run: its state holds the watermarks
            elif refused := await self._open():
                return await self._discard(refused)
            if not state.analysed and not logic.is_terminal(state):
                await self._assessment.assess()
            if not logic.is_terminal(state) and self._flap.pending():
                await self._flap.hold()  # a flapping signature: quiet for a while first
            if not logic.is_terminal(state) and self._threshold.pending():
                await self._threshold.hold()  # a policy's `open_after`: enough failures first
            await self._lifecycle()
        except BaseException as exc:
            if is_cancelled_exception(exc):
                self._close(IncidentStatus.KILLED, "workflow cancelled")
                await self._tracker.save_projection(closed=True)
            raise
        await self._tracker.save_projection(closed=True)
        # Closed first, so the incident reads closed while its responders are being told.
        await self._responders.announce(str(state.status), state.closed_origin)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return IncidentResult(state.status, state.attempts, state.event_count, state.close_reason)

    async def _open(self) -> str:
        """Open this run's incident; return why not ("" when opened)."""
        if not patches.patched(patches.OPEN_WITH_WATERMARKS):
            request = self._tracker.projection_request()
            self._state.incident_id = await calls.record_incident(request)
        elif patches.patched(patches.OPEN_IN_ONE):
            if refused := await self._opening.open_and_assess():
                return refused
        elif refused := await self._intake.open_incident():
            return refused
        count_incident("opened")
        if logic.is_terminal(self._state) or not self._assessment.quiet_opening():
            self._tracker.publish_status()
        return ""

    async def _discard(self, reason: str) -> IncidentResult:
        """End a run that opens no incident (a redelivery, a forged start): nothing to do."""
        state = self._state
        state.status, state.close_reason = IncidentStatus.SUPPRESSED, reason
        self._tracker.publish_status()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return IncidentResult(state.status, 0, 0, state.close_reason)

    async def _lifecycle(self) -> None:
        """Take the next step until the incident ends, saving and rolling over in between."""
        state = self._state
        while not logic.is_terminal(state):
            if self._waits.continue_as_new_due():
                await self._waits.continue_as_new()
            if self._tracker.unsaved:
                await self._tracker.save_projection()
            if state.paused:
                await self._waits.until_resumed()
            elif state.status == IncidentStatus.ESCALATED:
                await self._escalation.step()
            elif state.status == IncidentStatus.ACKNOWLEDGED:
                await self._responders.announce("acknowledged", state.acknowledged_origin)
                state.next_action = "acknowledged; waiting for resolve"
                self._tracker.refresh_details()
                await self._waits.until_interrupted("acknowledged")
            else:
                await self._remediation_step()

    # --- remediation ----------------------------------------------------------------------

    async def _remediation_step(self) -> None:
        """Wait out a planned delay, escalate when retrying is over, else ask the gate."""
        state = self._state
        assert state.plan is not None
        if self._vendor.holding():  # a vendor incident holds it (vendor_link.py)
            await self._vendor.hold()
        elif self._waits.next_action_pending():
            await self._waits.until_next_action()
        elif not state.retryable:
            await self._escalation.start(f"{state.error_code} is not retryable")
        elif state.attempts >= state.plan.max_attempts:
            await self._escalation.start(f"all {state.plan.max_attempts} attempts failed")
        elif self._approval.required():
            if refusal := await self._approval.hold():
                await self._escalation.start(refusal)
        elif patches.patched(patches.LEAN_ATTEMPT):
            await self._ask_gate(lean=True, count_vendor=self._vendor.counts())
        elif not await self._vendor.degraded():  # else a vendor incident holds it from now on
            await self._ask_gate()

    async def _ask_gate(self, *, lean: bool = False, count_vendor: bool = False) -> None:
        """Attempt if the safety gate permits; otherwise wait, end or escalate as it says."""
        state = self._state
        request = requests.gate_request(self._inp, state, count_vendor=count_vendor)
        gate = await calls.check_gate(request)
        if lean and logic.is_terminal(state):
            return  # killed or resolved while the gate was asked
        if gate.vendor_degraded:  # linking counts again under a lock: lost only to a race
            if not await self._vendor.degraded() and not logic.is_terminal(state):
                await self._ask_gate(lean=True)
            return
        state.gate_reason = logic.gate_reason(gate)
        state.gate_waits = state.gate_waits + 1 if gate.verdict == GateVerdict.WAIT else 0
        if gate.verdict == GateVerdict.WAIT:
            if state.gate_waits == 1 and state.status == IncidentStatus.WAITING:
                self._tracker.note_new_cause()  # from a backoff straight into a gate wait
            self._tracker.set_status(IncidentStatus.WAITING)
            label = f"gate check for retry #{state.attempts + 1} ({gate.reason})"
            self._tracker.schedule(gate.wait_s, label)
            await self._vendor.gate_waited(gate)
        elif gate.verdict == GateVerdict.DENY and gate.kill:
            self._close(IncidentStatus.KILLED, gate.reason)
        elif gate.verdict == GateVerdict.DENY and gate.suppress:
            self._close(IncidentStatus.SUPPRESSED, gate.reason)
        elif gate.verdict == GateVerdict.DENY:
            await self._escalation.start(f"safety gate denied retry: {gate.reason}")
        else:
            await self._attempt(probe=gate.probe)

    async def _attempt(self, *, probe: bool) -> None:
        """Run one callback attempt and decide what follows from its outcome."""
        state = self._state
        assert state.plan is not None
        state.attempts += 1
        attempt = state.attempts
        state.next_action, state.next_action_at = f"retry #{attempt} running", None
        self._tracker.set_status(IncidentStatus.REMEDIATING)
        action = requests.retry_action(
            self._inp, state, attempt=attempt, status=ActionStatus.PENDING
        )
        lean = patches.patched(patches.LEAN_ATTEMPT)
        if lean:
            await self._tracker.save_with_action(action)
        else:
            await calls.record_action(action)
            await self._tracker.save_projection()
        count = lean and bool(self._inp.vendor) and patches.patched(patches.RECORD_BREAKER_OUTCOME)
        outcome = await self._callback.call(attempt, probe=probe, count=count)
        if self._inp.vendor and patches.patched(patches.RECORD_BREAKER_OUTCOME):
            key = requests.attempt_key(state, attempt) if lean else ""
            breaker = await self._callback.count_outcome(outcome, probe, key)
            await self._vendor.counted(breaker, outcome)
        state.latest_action = logic.attempt_summary(attempt, outcome)
        if logic.is_terminal(state):
            return
        if outcome.outcome == CallOutcome.SUCCESS:
            self._close(IncidentStatus.RESOLVED, f"retry #{attempt} succeeded")
        elif outcome.outcome == CallOutcome.FATAL:
            await self._escalation.start(f"retry #{attempt} failed permanently: {outcome.detail}")
        elif attempt < state.plan.max_attempts:
            unit_random = workflow.random().random()
            delay = logic.retry_delay(state.plan, attempt, unit_random, outcome.retry_after_s)
            self._tracker.set_status(IncidentStatus.WAITING)
            self._tracker.schedule(delay, f"backoff {delay:g}s before retry #{attempt + 1}")
        self._tracker.refresh_details()

    def _close(self, status: IncidentStatus, reason: str) -> None:
        """End the incident; a kill also cancels a running callback."""
        self._tracker.close(status, reason)
        if status == IncidentStatus.KILLED:
            self._callback.cancel()

    # --- signals and queries ------------------------------------------------------------

    @workflow.signal(name=SignalName.EVENT_DIGEST)
    def event_digest(self, digest: EventDigest) -> None:
        """Internal: one outbox group from the dispatcher, de-duplicated by sequence."""
        self._waits.signals += 1
        self._intake.receive_digest(digest)

    @workflow.signal(name=SignalName.EVENTS)
    def events(self, batch: EventBatch) -> None:
        """Internal, legacy: events in full from older dispatchers, de-duplicated by id."""
        self._waits.signals += 1
        self._intake.receive_batch(batch)

    @workflow.signal(name=SignalName.PAUSE)
    def pause(self, request: OperatorRequest | None = None) -> None:
        """Hold the next attempt until `resume`; the transition names who paused and why."""
        state = self._state
        if not logic.is_terminal(state) and not state.paused:
            state.paused = True
            state.operator_note = logic.operator_note("paused", request or OperatorRequest())
            self._tracker.unsaved = True
            self._tracker.publish_status()

    @workflow.signal(name=SignalName.RESUME)
    def resume(self, request: OperatorRequest | None = None) -> None:
        """Release a `pause`; the transition names who resumed."""
        state = self._state
        if state.paused:
            state.paused = False
            state.operator_note = logic.operator_note("resumed", request or OperatorRequest())
            self._tracker.unsaved = True
            self._tracker.publish_status()

    @workflow.signal(name=SignalName.KILL)
    def kill(self, request: KillRequest | None = None) -> None:
        """Stop everything now: cancel a running callback; nothing runs afterwards."""
        if not logic.is_terminal(self._state):
            request = request or KillRequest()
            self._state.closed_origin = request.origin
            self._close(IncidentStatus.KILLED, request.reason)

    @workflow.signal(name=SignalName.RESOLVE)
    def resolve(self, request: ResolveRequest | None = None) -> None:
        """Close the incident as resolved."""
        if not logic.is_terminal(self._state):
            request = request or ResolveRequest()
            self._state.closed_origin = request.origin
            self._close(IncidentStatus.RESOLVED, request.reason)

    @workflow.signal(name=SignalName.ACKNOWLEDGE)
    def acknowledge(self, request: AcknowledgeRequest | None = None) -> None:
        """Acknowledge an escalation: stop paging further levels."""
        state = self._state
        if state.status == IncidentStatus.ESCALATED:
            request = request or AcknowledgeRequest()
            state.acknowledged_by, state.acknowledged_origin = request.by, request.origin
            state.next_action, state.next_action_at = None, None
            self._tracker.set_status(IncidentStatus.ACKNOWLEDGED)
            self._tracker.unsaved = True

    @workflow.query(name=QueryName.STATUS)
    def status(self) -> IncidentView:
        """The live incident view (same field names as the incident API)."""
        return logic.incident_view(self._inp, self._state, workflow.info().workflow_id)
