"""How `IncidentWorkflow` waits: until a planned action or a signal, and when to roll over.

Deterministic workflow code: it runs inside the workflow sandbox. Waits are `wait_condition`s
with a timeout rather than sleeps, so a signal (pause, kill, a success event) ends them early.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from temporalio import workflow

from workflows.incident_logic import is_terminal
from workflows.incident_state import IncidentInput, IncidentState
from workflows.incident_tracker import IncidentTracker

# A run rolls over well before Temporal's hard limits (51,200 events / 50 MB), whatever the
# server's continue-as-new suggestion is configured to, and however fast signals arrive.
MAX_HISTORY_EVENTS = 10_000
MAX_HISTORY_BYTES = 8 * 1024 * 1024


class IncidentWaits:
    """Waits of one run, interrupted by signals; counts signals to know when to roll over."""

    def __init__(self, inp: IncidentInput, state: IncidentState, tracker: IncidentTracker) -> None:
        self._inp = inp
        self._state = state
        self._tracker = tracker
        self.signals = 0  # signals this run has taken: past a limit, the run rolls over

    async def until(self, done: Callable[[], bool], timeout_s: float | None, summary: str) -> bool:
        """Wait until `done()`; False when `timeout_s` elapsed first."""
        try:
            await workflow.wait_condition(done, timeout=timeout_s, timeout_summary=summary)
        except TimeoutError:
            return False
        return True

    async def until_resumed(self) -> None:
        """Hold a paused incident until `resume`, its end, or a roll-over."""
        state = self._state
        await self.until(
            lambda: not state.paused or is_terminal(state) or self.continue_as_new_due(),
            None,
            "paused until resume",
        )

    async def until_interrupted(self, summary: str) -> None:
        """Wait with nothing planned, until a signal or a roll-over needs the workflow."""
        await self.until(self.interrupted, None, summary)

    async def until_next_action(self) -> None:
        """Sleep until the planned action, unless a signal or a status change comes first."""
        state = self._state
        assert state.next_action_at is not None
        remaining = (state.next_action_at - workflow.now()).total_seconds()
        status = state.status
        came_first = await self.until(
            lambda: self.interrupted() or state.status != status,
            remaining,
            state.next_action or "waiting",
        )
        if not came_first:
            state.next_action_at = None

    def next_action_pending(self) -> bool:
        """Tell whether a planned action lies in the future."""
        at = self._state.next_action_at
        return at is not None and workflow.now() < at

    def interrupted(self) -> bool:
        """Tell whether the workflow must act: ended, paused, unsaved or due to roll over."""
        state = self._state
        ended_or_held = is_terminal(state) or state.paused
        return ended_or_held or self._tracker.unsaved or self.continue_as_new_due()

    def continue_as_new_due(self) -> bool:
        """Tell whether this run should roll over: Temporal suggests it, or one of our limits."""
        info = workflow.info()
        return (
            self.signals >= self._inp.max_signals_per_run
            or info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= MAX_HISTORY_EVENTS
            or info.get_current_history_size() >= MAX_HISTORY_BYTES
        )

    async def continue_as_new(self) -> None:
        """Carry the whole state into a new run once every signal handler has finished."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._state.runs += 1
        workflow.continue_as_new(replace(self._inp, state=self._state))
