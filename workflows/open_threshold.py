"""Open thresholds: a retry policy's `open_after: {count, within_s}` holds remediation back.

Failures are stored and counted as always; remediation starts only once `count` of them
occurred within `within_s` seconds of each other (by their `occurred_at`). The window closes
`within_s` after the incident was planned (workflow time, so a client's clock cannot stretch
it): short of the count by then, the incident closes `below_threshold`.

Deterministic workflow code: it runs inside the workflow sandbox.
"""

from __future__ import annotations

import functools
from datetime import timedelta

from temporalio import workflow

from vocabulary import IncidentStatus
from workflows import patches
from workflows.incident_logic import is_terminal
from workflows.incident_state import IncidentState, RetryPlan
from workflows.incident_tracker import IncidentTracker
from workflows.incident_waits import IncidentWaits


def most_failures_within(times_us: list[int], within_s: float) -> int:
    """The most failure times (sorted, µs) that fit in one window of `within_s` seconds."""
    window_us, first, most = within_s * 1_000_000, 0, 0
    for last, at in enumerate(times_us):
        while at - times_us[first] > window_us:
            first += 1
        most = max(most, last - first + 1)
    return most


def waiting_label(plan: RetryPlan, seen: int) -> str:
    """The next action while held: "remediation starts at 3 failures within 60 s (2 so far)"."""
    count, within = plan.open_after_count, plan.open_after_within_s
    return f"remediation starts at {count} failures within {within:g} s ({seen} so far)"


def below_threshold_reason(plan: RetryPlan, seen: int) -> str:
    """The close reason: "below threshold: 2 of 3 failures within 60 s"."""
    count, within = plan.open_after_count, plan.open_after_within_s
    return f"below threshold: {seen} of {count} failures within {within:g} s"


class OpenThreshold:
    """Holds an incident in `waiting` until its policy's failure threshold is met."""

    def __init__(
        self, state: IncidentState, tracker: IncidentTracker, waits: IncidentWaits
    ) -> None:
        self._state = state
        self._tracker = tracker
        self._waits = waits

    def pending(self) -> bool:
        """Tell whether remediation must wait for the threshold (patched: open-thresholds)."""
        state = self._state
        plan = state.plan
        if plan is None or plan.open_after_count <= 1 or state.threshold_met:
            return False
        return patches.patched(patches.OPEN_THRESHOLDS)

    def status_after_plan(self) -> IncidentStatus:
        """`waiting` (with the threshold's deadline) if remediation is held, else `remediating`."""
        state = self._state
        if not self.pending():
            return IncidentStatus.REMEDIATING
        assert state.plan is not None
        within = timedelta(seconds=state.plan.open_after_within_s)
        state.threshold_deadline = state.threshold_deadline or workflow.now() + within
        self._show(self._seen())
        return IncidentStatus.WAITING

    async def hold(self) -> None:
        """Wait for the threshold: then remediation starts; at the deadline, close below it."""
        state = self._state
        assert state.plan is not None and state.threshold_deadline is not None
        expired = False
        while not is_terminal(state):
            seen = self._seen()
            if seen >= state.plan.open_after_count:
                state.threshold_met = True
                state.next_action, state.next_action_at = None, None
                self._tracker.set_status(IncidentStatus.REMEDIATING)
                return
            remaining = (state.threshold_deadline - workflow.now()).total_seconds()
            if expired or remaining <= 0:
                self._tracker.close(
                    IncidentStatus.BELOW_THRESHOLD, below_threshold_reason(state.plan, seen)
                )
                return
            self._show(seen)
            if self._tracker.unsaved:
                await self._tracker.save_projection()
            if self._waits.continue_as_new_due():
                await self._waits.continue_as_new()
            changed = functools.partial(self._changed, seen)
            expired = not await self._waits.until(changed, remaining, "open threshold")

    def _seen(self) -> int:
        state = self._state
        assert state.plan is not None
        return most_failures_within(state.failure_times_us, state.plan.open_after_within_s)

    def _changed(self, seen: int) -> bool:
        """Tell whether the hold must look again: a new failure, an end, a save or a roll-over."""
        state = self._state
        return (
            self._seen() != seen
            or is_terminal(state)
            or self._tracker.unsaved
            or self._waits.continue_as_new_due()
        )

    def _show(self, seen: int) -> None:
        state = self._state
        assert state.plan is not None
        state.next_action = waiting_label(state.plan, seen)
        state.next_action_at = state.threshold_deadline
        self._tracker.refresh_details()
