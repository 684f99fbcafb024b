"""How `IncidentWorkflow` calls back once: the callback activity, its outcome, the breaker.

Deterministic workflow code: it runs inside the workflow sandbox.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

from vocabulary import ActionStatus, CallOutcome
from workflows import activity_calls as calls
from workflows import activity_requests as requests
from workflows import patches
from workflows.activity_payloads import CallbackOutcome, OutcomeRecord
from workflows.incident_state import IncidentInput, IncidentState

# The breaker state `count_outcome` reports for an outcome it did not count.
UNCOUNTED = "unchanged"


class CallbackAttempt:
    """Runs one incident's callbacks, one at a time, and can cancel the running one."""

    def __init__(self, inp: IncidentInput, state: IncidentState) -> None:
        self._inp = inp
        self._state = state
        self._running: workflow.ActivityHandle[CallbackOutcome] | None = None

    async def call(
        self, attempt: int, *, probe: bool = False, count: bool = False
    ) -> CallbackOutcome:
        """Call back once; an activity that ends without an outcome is a failed attempt.

        With `count`, the activity also counts the outcome in the vendor's breaker."""
        inp, state = self._inp, self._state
        workflow_id = workflow.info().workflow_id
        request = requests.callback_request(inp, state, workflow_id=workflow_id, attempt=attempt)
        request.count_breaker, request.probe = count, probe
        target = inp.vendor or inp.source_workflow
        self._running = calls.start_callback(request, f"retry #{attempt} → {target}")
        try:
            return await self._running
        except ActivityError as err:
            cancelled = is_cancelled_exception(err)
            outcome = CallbackOutcome(
                CallOutcome.CANCELLED if cancelled else CallOutcome.RETRYABLE,
                None,
                "killed" if cancelled else f"no outcome: {err.cause}",
            )
            if self._uncounted(cancelled=cancelled, probe=probe):
                outcome.breaker = UNCOUNTED
            status = ActionStatus.CANCELLED if cancelled else ActionStatus.FAILED
            await calls.record_action(
                requests.retry_action(inp, state, attempt=attempt, status=status, outcome=outcome)
            )
            return outcome
        finally:
            self._running = None

    def _uncounted(self, *, cancelled: bool, probe: bool) -> bool:
        """Tell whether an attempt that ended without an outcome stays out of the breaker.

        The activity bounds the call itself (its POST has an overall timeout), so an attempt
        without an outcome failed on this side: the worker's timeout, crash or database. A
        half-open probe's still counts: its lease would otherwise hold the next probe back."""
        if cancelled or probe or not self._inp.vendor:
            return False
        return patches.patched(patches.UNCOUNTED_NO_OUTCOME)

    async def count_outcome(
        self, outcome: CallbackOutcome, probe: bool, attempt_key: str = ""
    ) -> str:
        """Count the outcome in the vendor's circuit breaker (best effort); its state after.

        With `attempt_key`, an outcome the callback activity counted already is not counted
        again, even when its answer was lost."""
        inp = self._inp
        assert inp.vendor is not None
        if outcome.breaker:
            return outcome.breaker  # counted by the callback activity itself
        record = OutcomeRecord(inp.tenant_id, inp.vendor, outcome.outcome, probe, attempt_key)
        try:
            return await calls.record_outcome(record)
        except ActivityError as err:
            # Breaker accounting is best effort: an outage must not fail the incident.
            workflow.logger.warning("breaker outcome not recorded: %s", err.cause)
            return "unknown"

    def cancel(self) -> None:
        """Cancel the running callback, if one runs (a kill)."""
        if self._running is not None:
            self._running.cancel()
