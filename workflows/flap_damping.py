"""Flap damping: a retry policy's `flap: {reopens, within_s, quiet_s}` holds a flapping incident.

Planning counts the incidents of the same signature that closed `resolved` within `within_s`
before this one opened (activities/analysis.py); at `reopens` or more the incident is
`flapping`. Its transition names the count, it announces `flapping` instead of `opened` (once
per flap episode: not when an earlier incident of the episode said it already), and no
callback runs until `quiet_s` seconds pass without a failure (workflow time; each failure
starts the quiet period again). A success meanwhile is recorded, not acted on (event_intake.py),
so the signature does not close and re-open with every flap: when the quiet period ends, a
success newer than every failure resolves the incident ("flapping ended"), otherwise
remediation starts. Pause, resume, kill and resolve work as in any other status.

Deterministic workflow code: it runs inside the workflow sandbox.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from vocabulary import IncidentStatus
from workflows import patches
from workflows.incident_logic import is_flapping, is_terminal, success_resolves
from workflows.incident_state import IncidentState, RetryPlan
from workflows.incident_tracker import IncidentTracker
from workflows.incident_waits import IncidentWaits
from workflows.open_threshold import OpenThreshold
from workflows.responders import Responders


def quiet_label(plan: RetryPlan) -> str:
    """The next action while flapping: "remediation starts after 900 s without a failure"."""
    return f"remediation starts after {plan.flap_quiet_s:g} s without a failure"


def flapping_ended_reason(plan: RetryPlan) -> str:
    """The close reason when a success outlasted the quiet period."""
    return f"flapping ended: a success, then {plan.flap_quiet_s:g} s without a failure"


def quiet_over_note(plan: RetryPlan) -> str:
    """The decision shown when remediation starts after the quiet period."""
    return f"flapping over: {plan.flap_quiet_s:g} s without a failure; remediation starts"


class FlapDamping:
    """Holds a flapping incident's remediation until its signature has been quiet."""

    def __init__(
        self,
        state: IncidentState,
        tracker: IncidentTracker,
        waits: IncidentWaits,
        responders: Responders,
        threshold: OpenThreshold,
    ) -> None:
        self._state = state
        self._tracker = tracker
        self._waits = waits
        self._responders = responders
        self._threshold = threshold

    def pending(self) -> bool:
        """Tell whether remediation waits for a quiet period (patched: flap-damping)."""
        state = self._state
        if state.plan is None or state.flap_settled or not is_flapping(state.plan):
            return False
        return patches.patched(patches.FLAP_DAMPING)

    def status_after_plan(self) -> IncidentStatus:
        """`flapping` (quiet period started) if the plan says so, else the threshold's status."""
        if not self.pending():
            return self._threshold.status_after_plan()
        self._restart_quiet_period()
        return IncidentStatus.FLAPPING

    async def announce_opened(self) -> None:
        """Announce `opened`; a flapping incident `flapping`, once per flap episode."""
        state = self._state
        if state.status != IncidentStatus.FLAPPING:
            await self._responders.announce("opened")
        elif state.plan is not None and not state.plan.flap_announced:
            await self._responders.announce("flapping")

    async def hold(self) -> None:
        """Wait out the quiet period; then resolve (a success came last) or remediate."""
        state = self._state
        while not is_terminal(state):
            if state.failure_count != state.flap_failures:
                self._restart_quiet_period()  # a failure while flapping: quiet again from now
            assert state.flap_quiet_until is not None
            remaining = (state.flap_quiet_until - workflow.now()).total_seconds()
            if remaining <= 0:
                self._settle()
                return
            self._show()
            if self._tracker.unsaved:
                await self._tracker.save_projection()
            if self._waits.continue_as_new_due():
                await self._waits.continue_as_new()
            await self._waits.until(self._changed, remaining, "flapping: quiet period")

    def _restart_quiet_period(self) -> None:
        state = self._state
        assert state.plan is not None
        state.flap_failures = state.failure_count
        state.flap_quiet_until = workflow.now() + timedelta(seconds=state.plan.flap_quiet_s)
        self._show()

    def _settle(self) -> None:
        """End the hold: a success newer than every failure resolves, else remediation starts."""
        state = self._state
        assert state.plan is not None
        state.flap_settled = True
        state.next_action, state.next_action_at = None, None
        success_at = state.flap_success_at
        if success_at is not None and success_resolves(state, success_at):
            self._tracker.close(IncidentStatus.RESOLVED, flapping_ended_reason(state.plan))
            return
        state.latest_decision = quiet_over_note(state.plan)
        self._tracker.set_status(self._threshold.status_after_plan())

    def _changed(self) -> bool:
        """Tell whether the hold must look again: a failure, an end, a save or a roll-over."""
        state = self._state
        return (
            state.failure_count != state.flap_failures
            or is_terminal(state)
            or self._tracker.unsaved
            or self._waits.continue_as_new_due()
        )

    def _show(self) -> None:
        state = self._state
        assert state.plan is not None
        state.next_action = quiet_label(state.plan)
        state.next_action_at = state.flap_quiet_until
        self._tracker.refresh_details()
