"""`IncidentWorkflow`: one incident's life, from first failure to resolution (DESIGN §5).

open → analyzing → remediating ⇄ waiting → resolved; → escalated → acknowledged → resolved;
`paused` overlays any live state until `resume`; `killed` and `suppressed` are terminal.
"""

from __future__ import annotations

import copy

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, is_cancelled_exception

# These modules hold only deterministic code and dataclasses: sharing them across runs saves
# the sandbox re-importing them for every workflow (CPU) and every cached run (memory).
with workflow.unsafe.imports_passed_through():
    from workflows.incident_core import IncidentCore, count_incident
    from workflows.incident_logic import (
        apply_digest,
        apply_events,
        incident_view,
        is_terminal,
        retry_delay,
        success_resolves,
    )
    from workflows.incident_steps import IncidentSteps
    from workflows.incident_types import (
        DIGEST_SIGNAL,
        WORKFLOW_TYPE,
        AcknowledgeRequest,
        ActionRequest,
        CallbackOutcome,
        CallbackRequest,
        DecisionRequest,
        EscalationOutcome,
        EscalationStep,
        EventBatch,
        EventDigest,
        GateRequest,
        IncidentInput,
        IncidentResult,
        IncidentState,
        IncidentView,
        KillRequest,
        OpenIncidentRequest,
        OutcomeRecord,
        ResolveRequest,
    )


SEVERITY_KEY = SearchAttributeKey.for_keyword("Severity")
ERROR_CODE_KEY = SearchAttributeKey.for_keyword("ErrorCode")
# Opening checks earlier runs' watermarks and the latest success (exact de-duplication).
OPEN_WITH_WATERMARKS = "open-with-watermarks"


@workflow.defn(name=WORKFLOW_TYPE)
class IncidentWorkflow(IncidentCore):
    """Classifies, retries through the client's callback, escalates; steered by signals."""

    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        self._inp = inp
        self._s: IncidentState = inp.state or IncidentState()
        self._signals = 0
        self._dirty = False
        self._published_status = ""
        self._steps = IncidentSteps(inp, self._s)
        self._callback: workflow.ActivityHandle[CallbackOutcome] | None = None
        # Digests that arrive before earlier runs' watermarks are known wait here.
        self._inbox: list[EventDigest] = []

    @workflow.run
    async def run(self, _inp: IncidentInput) -> IncidentResult:
        """Drive the incident until it is resolved, killed or suppressed."""
        try:
            if not self._s.incident_id:
                if workflow.patched(OPEN_WITH_WATERMARKS):
                    if refused := await self._open():
                        return await self._discard(refused)
                else:
                    self._s.incident_id = await self._steps.record(self._record_request())
                count_incident("opened")
                self._publish()
            else:
                self._take_inbox()  # a continued run: its state holds the watermarks
            if not self._s.analysed and not is_terminal(self._s):
                await self._assess()
            await self._lifecycle()
        except BaseException as exc:
            if is_cancelled_exception(exc):
                self._close("killed", "workflow cancelled")
                await self._steps.record(self._record_request(closed=True))
            raise
        await self._steps.record(self._record_request(closed=True))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return IncidentResult(
            self._s.status, self._s.attempts, self._s.event_count, self._s.close_reason
        )

    # --- opening --------------------------------------------------------------------------

    async def _open(self) -> str:
        """Open this run's incident; return why not ("" when opened)."""
        s = self._s
        tentative = copy.deepcopy(s)
        for digest in self._inbox:
            apply_digest(tentative, digest)
        pending: dict[str, int] = {}
        for digest in self._inbox:
            if digest.seqs:
                pending[digest.source] = max(pending.get(digest.source, 0), digest.seqs[-1])
        opened = await self._steps.open(
            OpenIncidentRequest(
                record=self._record_request(state=tentative),
                pending=pending,
                legacy_events=s.event_count > 0,
            )
        )
        s.watermarks = dict(opened.watermarks)
        self._take_inbox()
        if not opened.incident_id:
            return opened.refused or "redelivery: its events were already counted"
        s.incident_id = opened.incident_id
        success_at = opened.latest_success_at
        if success_at and s.last_failure_at and success_resolves(s, success_at):
            # The success was stored before this incident existed, so no signal carried it.
            self._close("resolved", f"success event {opened.latest_success_id} followed")
        return ""

    async def _discard(self, reason: str) -> IncidentResult:
        """End a run that opens no incident (a redelivery, a forged start): nothing to do."""
        s = self._s
        s.status, s.close_reason = "suppressed", reason
        self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return IncidentResult(s.status, 0, 0, s.close_reason)

    def _take_inbox(self) -> None:
        self._s.watermarks_loaded = True
        inbox, self._inbox = self._inbox, []
        for digest in inbox:
            self._take(digest)

    def _take(self, digest: EventDigest) -> None:
        s = self._s
        success_at = apply_digest(s, digest)
        if success_at is not None and not is_terminal(s) and success_resolves(s, success_at):
            self._close("resolved", "a success event arrived for the failed step")
        self._refresh()

    # --- lifecycle ----------------------------------------------------------------------

    async def _assess(self) -> None:
        s = self._s
        self._set_status("analyzing")
        request = DecisionRequest(
            tenant_id=self._inp.tenant_id,
            incident_id=s.incident_id,
            workflow_id=workflow.info().workflow_id,
            source_workflow=self._inp.source_workflow,
            step=self._inp.step,
            error_code=self._inp.error_code,
            error_message=s.latest_event.error_message if s.latest_event else None,
            vendor=self._inp.vendor,
            event_count=s.event_count,
            failure_count=s.failure_count,
            event_id=s.latest_event.event_id if s.latest_event else "",
        )
        verdict = await self._steps.classify(request)
        s.error_code, s.category = verdict.code, verdict.category
        s.severity, s.retryable = verdict.severity, verdict.retryable
        s.latest_decision = f"classified {verdict.summary}"
        workflow.upsert_search_attributes(
            [SEVERITY_KEY.value_set(s.severity), ERROR_CODE_KEY.value_set(s.error_code)]
        )
        analysis = await self._steps.analyse(request)
        plan = await self._steps.plan(request)
        s.plan, s.callback_url, s.call_timeout_s = (
            plan.retry,
            plan.callback_url,
            plan.call_timeout_s,
        )
        s.escalation = plan.escalation
        s.latest_decision = f"{analysis.summary}; {plan.summary}"
        s.analysed = True
        if not is_terminal(s):
            self._set_status("remediating")
        await self._sync()

    async def _lifecycle(self) -> None:
        while not is_terminal(self._s):
            if self._roll_due():
                await self._roll()
            if self._dirty:
                await self._sync()
            if self._s.paused:
                await self._wait(
                    lambda: not self._s.paused or is_terminal(self._s) or self._roll_due(),
                    None,
                    "paused until resume",
                )
            elif self._s.status == "escalated":
                await self._escalation_step()
            elif self._s.status == "acknowledged":
                self._s.next_action = "acknowledged; waiting for resolve"
                self._refresh()
                await self._wait(self._interrupted, None, "acknowledged")
            else:
                await self._remediation_step()

    async def _remediation_step(self) -> None:
        s = self._s
        assert s.plan is not None
        if s.next_action_at is not None and workflow.now() < s.next_action_at:
            await self._wait_until_next_action()
            return
        if not s.retryable:
            await self._start_escalation(f"{s.error_code} is not retryable")
            return
        if s.attempts >= s.plan.max_attempts:
            await self._start_escalation(f"all {s.plan.max_attempts} attempts failed")
            return
        gate = await self._steps.check_gate(
            GateRequest(
                tenant_id=self._inp.tenant_id,
                incident_id=s.incident_id,
                source_workflow=self._inp.source_workflow,
                vendor=self._inp.vendor,
                attempt=s.attempts + 1,
                max_attempts=s.plan.max_attempts,
                waits=s.gate_waits,
            )
        )
        s.gate_reason = gate.reason or None
        s.gate_waits = s.gate_waits + 1 if gate.verdict == "wait" else 0
        if gate.verdict == "wait":
            self._set_status("waiting")
            self._schedule(gate.wait_s, f"{gate.reason}: wait {gate.wait_s:g}s")
        elif gate.verdict == "deny" and gate.kill:
            self._close("killed", gate.reason)
        elif gate.verdict == "deny" and gate.suppress:
            self._close("suppressed", gate.reason)
        elif gate.verdict == "deny":
            await self._start_escalation(f"safety gate denied retry: {gate.reason}")
        else:
            await self._attempt(probe=gate.probe)

    async def _attempt(self, *, probe: bool = False) -> None:
        s = self._s
        assert s.plan is not None
        s.attempts += 1
        attempt = s.attempts
        s.next_action, s.next_action_at = f"retry #{attempt} running", None
        self._set_status("remediating")
        key = f"{s.incident_id}:{attempt}"
        await self._steps.record_action(self._action(attempt, key, "pending"))
        await self._sync()
        outcome = await self._call(attempt, key)
        if self._inp.vendor and workflow.patched("record-breaker-outcome"):
            await self._count_outcome(outcome, probe)
        s.latest_action = f"retry #{attempt}: {outcome.outcome}" + (
            f" (HTTP {outcome.http_status})" if outcome.http_status else f" ({outcome.detail})"
        )
        if is_terminal(s):
            return
        if outcome.outcome == "success":
            self._close("resolved", f"retry #{attempt} succeeded")
        elif outcome.outcome == "fatal":
            await self._start_escalation(f"retry #{attempt} failed permanently: {outcome.detail}")
        elif attempt < s.plan.max_attempts:
            delay = retry_delay(s.plan, attempt, workflow.random().random(), outcome.retry_after_s)
            self._set_status("waiting")
            self._schedule(delay, f"backoff {delay:g}s before retry #{attempt + 1}")
        self._refresh()

    async def _call(self, attempt: int, key: str) -> CallbackOutcome:
        s = self._s
        latest = s.latest_event
        request = CallbackRequest(
            tenant_id=self._inp.tenant_id,
            incident_id=s.incident_id,
            workflow_id=workflow.info().workflow_id,
            attempt=attempt,
            idempotency_key=key,
            callback_url=s.callback_url,
            source_workflow=self._inp.source_workflow,
            step=self._inp.step,
            vendor=self._inp.vendor,
            error_code=s.error_code,
            error_message=None,
            payload=None,
            correlation_id=(latest.correlation_id if latest else "") or self._inp.correlation_id,
            timeout_s=s.call_timeout_s,
            event_id=latest.event_id if latest else "",
        )
        self._callback = self._steps.start_callback(
            request, f"retry #{attempt} → {self._inp.vendor or self._inp.source_workflow}"
        )
        try:
            return await self._callback
        except ActivityError as err:
            cancelled = is_cancelled_exception(err)
            outcome = CallbackOutcome(
                "cancelled" if cancelled else "retryable",
                None,
                "killed" if cancelled else f"no outcome: {err.cause}",
            )
            await self._steps.record_action(
                self._action(attempt, key, "cancelled" if cancelled else "failed", outcome.__dict__)
            )
            return outcome
        finally:
            self._callback = None

    async def _count_outcome(self, outcome: CallbackOutcome, probe: bool) -> None:
        assert self._inp.vendor is not None
        try:
            await self._steps.record_outcome(
                OutcomeRecord(self._inp.tenant_id, self._inp.vendor, outcome.outcome, probe)
            )
        except ActivityError as err:
            # Breaker accounting is best effort: an outage must not fail the incident.
            workflow.logger.warning("breaker outcome not recorded: %s", err.cause)

    async def _start_escalation(self, reason: str) -> None:
        self._s.latest_action = f"escalating: {reason}"
        self._s.next_action, self._s.next_action_at = None, None
        self._set_status("escalated")
        await self._sync()

    async def _escalation_step(self) -> None:
        s = self._s
        if s.next_action_at is not None and workflow.now() < s.next_action_at:
            await self._wait_until_next_action()
            return
        if s.escalation_level >= len(s.escalation):
            s.next_action, s.next_action_at = "all levels paged; waiting for acknowledge", None
            self._refresh()
            await self._wait(self._interrupted, None, "waiting for acknowledge")
            return
        step = s.escalation[s.escalation_level]
        s.escalation_level += 1
        outcome = await self._page(step)
        s.latest_action = f"escalation L{s.escalation_level} ({step.name}): " + (
            "delivered" if outcome.delivered else outcome.detail
        )
        self._schedule(
            step.ack_timeout_s,
            f"wait {step.ack_timeout_s:g}s for acknowledge (L{s.escalation_level})",
        )
        await self._sync()

    async def _page(self, step: EscalationStep) -> EscalationOutcome:
        """Page one level; a page that cannot be delivered is a failed action, never fatal."""
        s = self._s
        try:
            return await self._steps.escalate(self._inp, s, step)
        except ActivityError as err:
            outcome = EscalationOutcome(False, f"not delivered: {err.cause}"[:500])
        await self._steps.record_action(
            ActionRequest(
                tenant_id=self._inp.tenant_id,
                incident_id=s.incident_id,
                action_type="escalate",
                attempt=s.escalation_level,
                idempotency_key=f"{s.incident_id}:escalate:{s.escalation_level}",
                status="failed",
                parameters={"level": step.name},
                result={"delivered": False, "detail": outcome.detail},
            )
        )
        return outcome

    # --- signals and queries ------------------------------------------------------------

    @workflow.signal(name=DIGEST_SIGNAL)
    def event_digest(self, digest: EventDigest) -> None:
        """Internal: one outbox group from the dispatcher, de-duplicated by sequence."""
        self._signals += 1
        if self._s.watermarks_loaded:
            self._take(digest)
        else:
            self._inbox.append(digest)

    @workflow.signal(name="events")
    def events(self, batch: EventBatch) -> None:
        """Internal, legacy: events in full from older dispatchers, de-duplicated by id."""
        self._signals += 1
        if apply_events(self._s, batch) and not is_terminal(self._s):
            self._close("resolved", "a success event arrived for the failed step")
        self._refresh()

    @workflow.signal
    def pause(self) -> None:
        """Hold the next attempt until `resume`."""
        if not is_terminal(self._s) and not self._s.paused:
            self._s.paused, self._dirty = True, True
            self._publish()

    @workflow.signal
    def resume(self) -> None:
        """Release a `pause`."""
        if self._s.paused:
            self._s.paused, self._dirty = False, True
            self._publish()

    @workflow.signal
    def kill(self, req: KillRequest | None = None) -> None:
        """Stop everything now: cancel a running callback; nothing runs afterwards."""
        if not is_terminal(self._s):
            self._close("killed", (req or KillRequest()).reason)

    @workflow.signal
    def resolve(self, req: ResolveRequest | None = None) -> None:
        """Close the incident as resolved."""
        if not is_terminal(self._s):
            self._close("resolved", (req or ResolveRequest()).reason)

    @workflow.signal
    def acknowledge(self, req: AcknowledgeRequest | None = None) -> None:
        """Acknowledge an escalation: stop paging further levels."""
        if self._s.status == "escalated":
            self._s.acknowledged_by = (req or AcknowledgeRequest()).by
            self._s.next_action, self._s.next_action_at = None, None
            self._set_status("acknowledged")
            self._dirty = True

    @workflow.query
    def status(self) -> IncidentView:
        """The live incident view (same field names as the incident API)."""
        return incident_view(self._inp, self._s, workflow.info().workflow_id)
