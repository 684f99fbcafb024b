"""How an incident escalates: each level of the ladder is paged, then given its ack timeout.

Deterministic workflow code: it runs inside the workflow sandbox.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

from vocabulary import IncidentStatus
from workflows import activity_calls
from workflows.activity_payloads import EscalationOutcome
from workflows.activity_requests import escalation_request, failed_page_action
from workflows.incident_state import EscalationStep, IncidentInput, IncidentState
from workflows.incident_tracker import IncidentTracker
from workflows.incident_waits import IncidentWaits
from workflows.responders import Responders


class EscalationLadder:
    """Pages the levels of the escalation policy in turn until someone acknowledges."""

    def __init__(
        self,
        inp: IncidentInput,
        state: IncidentState,
        tracker: IncidentTracker,
        waits: IncidentWaits,
        responders: Responders,
    ) -> None:
        self._inp = inp
        self._state = state
        self._tracker = tracker
        self._waits = waits
        self._responders = responders

    async def start(self, reason: str) -> None:
        """Leave remediation for escalation, saying why."""
        state = self._state
        state.latest_action = f"escalating: {reason}"
        state.next_action, state.next_action_at = None, None
        self._tracker.set_status(IncidentStatus.ESCALATED)
        await self._tracker.save_projection()
        await self._responders.announce("escalated")

    async def step(self) -> None:
        """Page the next level and wait for its acknowledge timeout, or wait for acknowledge."""
        state = self._state
        if self._waits.next_action_pending():
            await self._waits.until_next_action()
            return
        if state.escalation_level >= len(state.escalation):
            state.next_action = "all levels paged; waiting for acknowledge"
            state.next_action_at = None
            self._tracker.refresh_details()
            await self._waits.until_interrupted("waiting for acknowledge")
            return
        level = state.escalation[state.escalation_level]
        state.escalation_level += 1
        if state.responders:
            outcome = await self._responders.page(state.escalation_level, level)
        else:
            outcome = await self._page(level)
        # Typed targets say per target how the page went; a legacy page says delivered or why not.
        shown_detail = outcome.delivered and not state.responders
        delivered = "delivered" if shown_detail else outcome.detail
        state.latest_action = f"escalation L{state.escalation_level} ({level.name}): {delivered}"
        label = f"wait {level.ack_timeout_s:g}s for acknowledge (L{state.escalation_level})"
        self._tracker.schedule(level.ack_timeout_s, label)
        await self._tracker.save_projection()

    async def _page(self, level: EscalationStep) -> EscalationOutcome:
        """Page one level; a page that cannot be delivered is a failed action, never fatal."""
        inp, state = self._inp, self._state
        workflow_id = workflow.info().workflow_id
        try:
            return await activity_calls.send_escalation(
                escalation_request(inp, state, workflow_id=workflow_id, step=level)
            )
        except ActivityError as err:
            outcome = EscalationOutcome(False, f"not delivered: {err.cause}"[:500])
        failed = failed_page_action(inp, state, step=level, detail=outcome.detail)
        await activity_calls.record_action(failed)
        return outcome
