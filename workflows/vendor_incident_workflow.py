"""`VendorIncidentWorkflow`: one tenant's vendor, degraded, as one incident over many.

open → resolved (the breaker closed after a successful probe, or an operator's `resolve`), or
→ killed. Incidents whose callbacks find the vendor's circuit open link to it and hold, as do
incidents opening while enough others name the vendor (one opened that way, its breaker never
seen open, resolves on its first successful probe). It pages once (after a short grace, with
every linked incident counted), asks one child at a time to make the probe, and on its end
releases the children, staggered (a `kill` kills them instead).
docs/ARCHITECTURE.md (Vendor incidents) describes the contract with the children.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from vocabulary import (
        VENDOR_WORKFLOW_TYPE,
        BreakerState,
        IncidentStatus,
        QueryName,
        SignalName,
        VendorSignal,
    )
    from workflows import activity_calls, vendor_calls
    from workflows import vendor_logic as logic
    from workflows.activity_requests import TRIGGER
    from workflows.responders import FOLLOW_UP_TRIES, MIRRORED_TYPES, PAGE_TRIES, RESOLVE
    from workflows.signal_payloads import KillRequest, ResolveRequest
    from workflows.vendor_payloads import (
        ChildLink,
        ProbeReport,
        VendorIncidentInput,
        VendorIncidentResult,
        VendorIncidentState,
        VendorProbe,
        VendorRef,
        VendorRelease,
    )

STATUS_KEY = SearchAttributeKey.for_keyword("IncidentStatus")
# A child asked to probe answers within its call timeout; past this, the next child probes.
PROBE_TIMEOUT_S = 60.0
# After a child could not probe (the gate held it back), the next is asked this much later.
PROBE_RETRY_S = 1.0
# How often a forced-open breaker (or one with nobody to probe) is read again.
RECHECK_S = 30.0
MAX_SIGNALS_PER_RUN = 1000


@workflow.defn(name=VENDOR_WORKFLOW_TYPE)
class VendorIncidentWorkflow:
    """Holds a tenant's incidents at one vendor while it is down; pages once; releases them."""

    @workflow.init
    def __init__(self, inp: VendorIncidentInput) -> None:
        self._inp = inp
        self._state = inp.state or VendorIncidentState()
        self._reports: list[ProbeReport] = []
        self._signals = 0
        self._ref = VendorRef(inp.tenant_id, inp.vendor)
        self._probe_every_s = 0.0  # read with the breaker

    @workflow.run
    async def run(self, _inp: VendorIncidentInput) -> VendorIncidentResult:
        """Watch the vendor until it recovers or an operator ends the incident."""
        state = self._state
        await workflow.wait_condition(lambda: bool(state.children) or logic.is_ended(state))
        if not state.children:  # ended by hand before any incident linked: nothing to store
            return VendorIncidentResult(state.status, 0, 0, state.close_reason)
        if not state.incident_id:
            state.incident_id = state.children[0].parent_incident_id
            state.opened_at = workflow.now()
            first = state.children[0]
            state.by_count = first.by_count and workflow.patched(logic.VENDOR_PARENTS_BY_COUNT)
        self._ref.incident_id = state.incident_id
        await self._save(logic.headline(self._inp, state), new_cause=False)
        if state.page is None:
            await self._page()
        while not logic.is_ended(state):
            if self._rollover_due():
                await workflow.wait_condition(workflow.all_handlers_finished)
                state.runs += 1
                workflow.continue_as_new(replace(self._inp, state=state))
            await self._watch()
        await self._end()
        return VendorIncidentResult(
            state.status, len(state.children), state.probes, state.close_reason
        )

    async def _page(self) -> None:
        """After the grace, page the tenant's first level once, every target at once."""
        state = self._state
        await self._wait(logic.PAGE_GRACE_S, "grace before paging: more incidents may link")
        if logic.is_ended(state):
            return
        state.page = await vendor_calls.page_targets(self._ref)
        outcomes = await asyncio.gather(
            *(self._deliver(TRIGGER, i, PAGE_TRIES) for i in range(len(state.page.targets)))
        )
        state.paged = [i for i, delivered in enumerate(outcomes) if delivered]
        shown = f"paged {len(state.paged)} of {len(outcomes)} target(s): "
        await self._save(shown + logic.headline(self._inp, state))

    async def _watch(self) -> None:
        """Read the breaker: closed ends it (opened by count: probes), open waits, half-open
        asks a child to probe."""
        state = self._state
        reading = await vendor_calls.read_breaker(self._ref)
        self._probe_every_s = reading.probe_every_s
        if state.by_count and reading.state in (BreakerState.OPEN, BreakerState.HALF_OPEN):
            state.breaker_opened = True  # from now on its breaker decides, as for any other
        counting = reading.state == BreakerState.CLOSED and logic.counted_only(state)
        if counting and not state.probing:
            await self._probe_by_count()
        elif reading.state in (BreakerState.CLOSED, BreakerState.FORCED_CLOSED) and not counting:
            self._close(IncidentStatus.RESOLVED, f"{self._inp.vendor} circuit {reading.state}")
        elif reading.state == BreakerState.OPEN and reading.open_for_s > 0:
            await self._wait(reading.open_for_s + 0.2, "circuit open until its probe")
        elif reading.state == BreakerState.FORCED_OPEN:
            await self._wait(RECHECK_S, "circuit forced open by an operator")
        elif not state.probing:
            await self._ask_probe()
        else:
            asked = state.probing
            await self._wait(PROBE_TIMEOUT_S, f"probe through incident {asked}")
            if state.probing == asked:  # no answer: the next child probes
                state.probing = ""
        if not self._take_reports():
            await self._wait(PROBE_RETRY_S, "the gate held the probe back: next child soon")

    async def _probe_by_count(self) -> None:
        """Opened by count, its breaker closed: probe one interval after opening and after each
        failed probe (the gate lets the probe through as any call of a closed circuit)."""
        wait_s = logic.probe_wait_s(self._state, self._probe_every_s, workflow.now())
        if wait_s > 0:
            await self._wait(wait_s, "degraded by count: next probe")
        else:
            await self._ask_probe()

    async def _ask_probe(self) -> None:
        """Ask the next held child to make its callback now, as this incident's probe."""
        state = self._state
        candidates = [
            c
            for c in state.children
            if c.incident_id not in state.released and c.parent_incident_id == state.incident_id
        ]
        if not candidates:
            self._close(IncidentStatus.RESOLVED, "no incident is held any more")
            return
        child = candidates[state.probe_turn % len(candidates)]
        state.probe_turn += 1
        if not await self._signal(child, SignalName.VENDOR_PROBE, VendorProbe(state.incident_id)):
            state.released.append(child.incident_id)  # it ended: nothing to hold or ask
            return
        state.probes += 1
        state.probing = child.incident_id
        reason = f"probe #{state.probes} through incident {child.incident_id} ({child.workflow_id})"
        await self._save(reason)

    def _take_reports(self) -> bool:
        """Count the children's probe reports: a closed breaker ends the vendor incident.
        False when a child could not make its probe."""
        state = self._state
        all_called = all(report.called for report in self._reports)
        for report in self._reports:
            if report.incident_id == state.probing:
                state.probing = ""
            how = "called" if report.called else "not called"
            state.last_probe = f"incident {report.incident_id}: {how}, breaker {report.breaker}"
            if logic.is_ended(state):
                continue
            if logic.recovered(state, report):
                self._close(IncidentStatus.RESOLVED, f"{self._inp.vendor} recovered: probe ok")
            elif report.called and logic.counted_only(state):
                wait = timedelta(seconds=self._probe_every_s)
                state.next_probe_at = workflow.now() + wait  # failed: the next child later
        self._reports.clear()
        workflow.set_current_details(logic.details_markdown(self._inp, state))
        return all_called

    async def _end(self) -> None:
        """Store the end, release every child (late ones too), tell what was paged."""
        state = self._state
        await self._save(state.close_reason or str(state.status), closed=True)
        workflow.upsert_search_attributes([STATUS_KEY.value_set(state.status.value)])
        await self._release_pending()
        await asyncio.gather(
            *(
                self._deliver(RESOLVE, i, FOLLOW_UP_TRIES)
                for i in state.paged
                if state.page and state.page.targets[i] in MIRRORED_TYPES
            )
        )
        # Children that linked during the follow-ups; the last check runs in the final task.
        await self._release_pending()
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _release_pending(self) -> None:
        """Release every child not released yet, including those linking meanwhile."""
        state = self._state
        while pending := [c for c in state.children if c.incident_id not in state.released]:
            await self._release(pending)

    async def _release(self, children: list[ChildLink]) -> None:
        """Release `children`, each after its share of the spread, so they resume staggered;
        a killed vendor incident kills them (its kill means: nothing calls that vendor)."""
        state = self._state
        reason = state.close_reason or str(state.status)
        delays = logic.release_delays(len(children))
        await asyncio.gather(
            *(self._let_go(c, d, reason) for c, d in zip(children, delays, strict=True))
        )
        state.released += [c.incident_id for c in children]
        for other in {c.parent_incident_id for c in children} - {state.incident_id}:
            # A child that linked while this incident was closing opened a row of its own.
            await vendor_calls.record(
                logic.record_request(self._inp, state, other, reason, closed=True)
            )

    async def _let_go(self, child: ChildLink, delay_s: float, reason: str) -> bool:
        """Release one child after `delay_s`, or kill it when this incident was killed."""
        state = self._state
        if state.status == IncidentStatus.KILLED:
            why = f"vendor incident {state.incident_id} killed: {reason}"
            kill = KillRequest(
                why, by=f"vendor incident {state.incident_id}", origin=state.closed_origin
            )
            return await self._signal(child, SignalName.KILL, kill)
        release = VendorRelease(child.parent_incident_id, delay_s, reason)
        return await self._signal(child, SignalName.VENDOR_RELEASE, release)

    async def _signal(self, child: ChildLink, name: str, arg: object) -> bool:
        """Signal one child; False when it has ended (nothing to hold or release)."""
        try:
            await workflow.get_external_workflow_handle(child.workflow_id).signal(name, arg)
        except FailureError:
            return False
        return True

    async def _deliver(self, event: str, index: int, tries: int) -> bool:
        """One delivery to target `index` of the tenant's first level; True when it was taken."""
        request = logic.page_request(
            self._inp,
            self._state,
            workflow_id=workflow.info().workflow_id,
            event=event,
            index=index,
            tries=tries,
        )
        try:
            return (await activity_calls.deliver(request)).delivered
        except ActivityError:
            return False  # the activity recorded its failed action; the incident goes on

    async def _wait(self, seconds: float, summary: str) -> None:
        """Wait up to `seconds`, ended early by its end, a probe report or a roll-over."""
        state = self._state
        workflow.set_current_details(logic.details_markdown(self._inp, state))
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: logic.is_ended(state) or bool(self._reports) or self._rollover_due(),
                timeout=seconds,
                timeout_summary=summary,
            )

    def _rollover_due(self) -> bool:
        info = workflow.info()
        return self._signals >= MAX_SIGNALS_PER_RUN or info.is_continue_as_new_suggested()

    def _close(self, status: IncidentStatus, reason: str) -> None:
        if not logic.is_ended(self._state):
            self._state.status, self._state.close_reason = status, reason

    async def _save(self, reason: str, *, new_cause: bool = True, closed: bool = False) -> None:
        """Write the row (with a transition row for `reason`) and the Web UI details."""
        state = self._state
        request = logic.record_request(
            self._inp, state, state.incident_id, reason, new_cause=new_cause, closed=closed
        )
        await vendor_calls.record(request)
        workflow.set_current_details(logic.details_markdown(self._inp, self._state))

    # --- signals and queries ------------------------------------------------------------

    @workflow.signal(name=VendorSignal.CHILD_LINKED)
    def child_linked(self, link: ChildLink) -> None:
        """A child is held by this incident (again: counted once)."""
        self._signals += 1
        state = self._state
        if all(c.incident_id != link.incident_id for c in state.children):
            state.children.append(link)

    @workflow.signal(name=VendorSignal.PROBE_RESULT)
    def probe_result(self, report: ProbeReport) -> None:
        """A child's probe (or why it made none)."""
        self._signals += 1
        self._reports.append(report)

    @workflow.signal(name=VendorSignal.RESOLVE)
    def resolve(self, request: ResolveRequest | None = None) -> None:
        """Resolve by hand: the children are released."""
        request = request or ResolveRequest()
        self._state.closed_origin = request.origin
        self._close(IncidentStatus.RESOLVED, request.reason)

    @workflow.signal(name=VendorSignal.KILL)
    def kill(self, request: KillRequest | None = None) -> None:
        """End it by hand, and every incident it holds with it."""
        request = request or KillRequest()
        self._state.closed_origin = request.origin
        self._close(IncidentStatus.KILLED, request.reason)

    @workflow.query(name=QueryName.STATUS)
    def status(self) -> VendorIncidentState:
        """The vendor incident's state: its children, probes and pages."""
        return self._state
