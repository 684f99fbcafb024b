"""An incident's side of a vendor incident: link to it, hold while it is open, probe when it
asks, resume when it releases (after the delay it gives, so its children resume staggered).

Deterministic workflow code: it runs inside the workflow sandbox. Every behaviour here is
behind the `vendor-parents` patch: an incident links only when a patched run sees the vendor's
circuit open, and holds only once linked; linking by count before a gate check is behind
`vendor-parents-by-count` (docs/ARCHITECTURE.md, Vendor incidents).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import FailureError

from vocabulary import BreakerState, CallOutcome, IncidentStatus, SignalName, VendorSignal
from workflows import patches, vendor_calls
from workflows.activity_payloads import CallbackOutcome, GateDecision
from workflows.incident_logic import is_terminal
from workflows.incident_state import IncidentInput, IncidentState
from workflows.incident_tracker import IncidentTracker
from workflows.incident_waits import IncidentWaits
from workflows.vendor_payloads import (
    LinkRequest,
    LinkResult,
    ProbeReport,
    VendorProbe,
    VendorRelease,
)

PARENT_KEY = SearchAttributeKey.for_keyword("ParentIncident")
HELD_STATUSES = frozenset({IncidentStatus.OPEN, IncidentStatus.REMEDIATING, IncidentStatus.WAITING})


class VendorLink:
    """Links one incident to its tenant's vendor incident and holds it while that is open."""

    def __init__(
        self,
        inp: IncidentInput,
        state: IncidentState,
        tracker: IncidentTracker,
        waits: IncidentWaits,
    ) -> None:
        self._inp = inp
        self._state = state
        self._tracker = tracker
        self._waits = waits
        # A probe asked for while this incident's link was still under way (the vendor
        # incident knew of it first): the vendor incident's row id.
        self._early_probe = ""

    def installed(self) -> VendorLink:
        """Register the vendor incident's `vendor_probe` and `vendor_release` signals."""
        workflow.set_signal_handler(SignalName.VENDOR_PROBE, self._probe_asked)
        workflow.set_signal_handler(SignalName.VENDOR_RELEASE, self._released)
        return self

    def holding(self) -> bool:
        """Tell whether the vendor incident holds this incident's next callback now."""
        state = self._state
        return state.parent_open and not state.vendor_probe and state.status in HELD_STATUSES

    async def hold(self) -> None:
        """Wait, with nothing planned, until released or asked to probe; when retrying is over,
        escalate without paging: the vendor incident paged for every incident it holds."""
        state = self._state
        assert state.plan is not None
        if not state.retryable or state.attempts >= state.plan.max_attempts:
            state.latest_action = f"paged through vendor incident {state.parent_incident_id}"
            state.escalation_level = len(state.escalation)  # no level of its own is paged
            state.next_action, state.next_action_at = None, None
            self._tracker.set_status(IncidentStatus.ESCALATED)
            return
        state.next_action = f"held by vendor incident {state.parent_incident_id}"
        state.next_action_at = None
        self._tracker.set_status(IncidentStatus.WAITING)
        self._tracker.refresh_details()
        await self._waits.until(
            lambda: not self.holding() or self._waits.interrupted(),
            None,
            f"held by vendor incident {state.parent_incident_id}",
        )

    async def degraded(self) -> bool:
        """Before a gate check: link when the tenant's vendor incident is open or enough
        incidents name the vendor (`degraded_after`); True when now held. An incident a vendor
        incident held once never links by count again (its release must not re-open one)."""
        if not self.counts():
            return False
        self._adopt(await vendor_calls.link_by_count(self._link_request("")))
        return self.holding()

    def counts(self) -> bool:
        """Whether this incident's vendor is counted toward `degraded_after` before a call."""
        inp, state = self._inp, self._state
        if not inp.vendor or not state.incident_id or state.parent_incident_id:
            return False
        return not state.vendor_probe and patches.patched(patches.VENDOR_PARENTS_BY_COUNT)

    async def gate_waited(self, gate: GateDecision) -> None:
        """After a gate wait: a probe that could not run is reported; an open circuit links."""
        if self._state.vendor_probe:
            await self._report(called=False, breaker=BreakerState.OPEN, detail=gate.reason)
        elif gate.circuit_open and patches.patched(patches.VENDOR_PARENTS):
            await self._link("circuit open")

    async def counted(self, breaker: str, outcome: CallbackOutcome) -> None:
        """After an outcome was counted: report a probe; a breaker left open links."""
        if self._state.vendor_probe:
            succeeded = outcome.outcome == CallOutcome.SUCCESS
            await self._report(
                called=True, breaker=breaker, detail=str(outcome.outcome), succeeded=succeeded
            )
        elif breaker == BreakerState.OPEN and patches.patched(patches.VENDOR_PARENTS):
            await self._link("breaker opened")

    async def _link(self, cause: str) -> None:
        """Link to the tenant's vendor incident (opened by the first incident that links)."""
        inp, state = self._inp, self._state
        if state.parent_open or not inp.vendor or not state.incident_id:
            return
        self._adopt(await vendor_calls.link(self._link_request(cause)))

    def _link_request(self, cause: str) -> LinkRequest:
        inp = self._inp
        assert inp.vendor is not None
        return LinkRequest(
            inp.tenant_id,
            inp.vendor,
            self._state.incident_id,
            workflow.info().workflow_id,
            inp.source_workflow,
            cause,
        )

    def _adopt(self, result: LinkResult) -> None:
        """Held from now on by the vendor incident the link named (if it named one)."""
        state = self._state
        if not result.parent_incident_id:
            return
        state.parent_workflow_id = result.parent_workflow_id
        state.parent_incident_id = result.parent_incident_id
        state.parent_open = True
        workflow.upsert_search_attributes([PARENT_KEY.value_set(result.parent_workflow_id)])
        if self._early_probe == result.parent_incident_id:
            self._probe_asked(VendorProbe(self._early_probe))
        self._early_probe = ""

    async def _report(
        self, *, called: bool, breaker: str, detail: str, succeeded: bool = False
    ) -> None:
        """Tell the vendor incident how its probe went (it may have ended meanwhile)."""
        state = self._state
        state.vendor_probe = False
        report = ProbeReport(state.incident_id, called, str(breaker), detail[:200], succeeded)
        parent = workflow.get_external_workflow_handle(state.parent_workflow_id)
        try:
            await parent.signal(VendorSignal.PROBE_RESULT, report)
        except FailureError as err:
            workflow.logger.info("vendor incident gone before the probe report: %s", err)

    def _probe_asked(self, request: VendorProbe) -> None:
        """The vendor incident asks this incident to make its next callback now, as its probe."""
        state = self._state
        if not state.parent_open:
            self._early_probe = request.parent_incident_id  # the link's answer is on its way
        elif request.parent_incident_id == state.parent_incident_id:
            state.vendor_probe = True
            state.operator_note = f"probe for vendor incident {state.parent_incident_id}"
            self._tracker.note_new_cause()

    def _released(self, release: VendorRelease) -> None:
        """The vendor incident ended: resume after the delay it gave (staggered)."""
        state = self._state
        if not state.parent_open or release.parent_incident_id != state.parent_incident_id:
            return
        state.parent_open = state.vendor_probe = False
        if is_terminal(state) or state.status not in HELD_STATUSES:
            return
        state.operator_note = (
            f"released by vendor incident {release.parent_incident_id}: {release.reason}"
        )
        label = f"resume {release.delay_s:g}s after vendor incident ended"
        state.next_action = label
        state.next_action_at = workflow.now() + timedelta(seconds=release.delay_s)
        self._tracker.note_new_cause()
        self._tracker.refresh_details()
