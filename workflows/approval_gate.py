"""Approval gates: a retry policy's `approval: first | every` holds callbacks for an operator.

Deterministic workflow code: it runs inside the workflow sandbox. Before a gated attempt the
incident is `awaiting_approval` and says what it will do; the `approve` and `reject` updates
decide, and their validator refuses a decision in any other state, with the reason. No
decision within the plan's `approval_timeout_s` escalates with "approval timed out".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from vocabulary import ApprovalMode, IncidentStatus, UpdateName
from workflows import patches
from workflows.incident_logic import is_terminal, operator_note, visible_status
from workflows.incident_state import IncidentState
from workflows.incident_tracker import IncidentTracker
from workflows.incident_waits import IncidentWaits
from workflows.signal_payloads import ApprovalRequest

APPROVAL_TIMED_OUT = "approval timed out"


def call_summary(state: IncidentState, attempt: int) -> str:
    """What the gated call will do, with no client data: host, attempt, the event it retries."""
    host = urlsplit(state.callback_url).hostname or "the registered callback"
    latest = state.latest_event
    event = (
        f"event {latest.event_id} ({state.error_code or latest.error_code or '-'} at "
        f"{latest.step or '-'})"
        if latest
        else "the stored failure"
    )
    return f"retry #{attempt} → {host}, payload of {event}"


class ApprovalGate:
    """Holds the next callback of an approval-gated policy until an operator decides."""

    def __init__(
        self, state: IncidentState, tracker: IncidentTracker, waits: IncidentWaits
    ) -> None:
        self._state = state
        self._tracker = tracker
        self._waits = waits

    def installed(self) -> ApprovalGate:
        """Register the `approve` and `reject` updates, each behind the state validator."""
        for name, approve in ((UpdateName.APPROVE, True), (UpdateName.REJECT, False)):
            workflow.set_update_handler(
                name, self._handler(approve=approve), validator=self._validator
            )
        return self

    def _handler(self, *, approve: bool) -> Callable[[ApprovalRequest], str]:
        def handle(request: ApprovalRequest) -> str:
            return self.decide(request, approve=approve)

        return handle

    def _validator(self, _request: ApprovalRequest) -> None:
        self.validate()

    def required(self) -> bool:
        """Tell whether the next attempt needs an approval that has not been given."""
        state, plan = self._state, self._state.plan
        if plan is None or plan.approval == ApprovalMode.NEVER:
            return False
        attempt = state.attempts + 1
        if plan.approval == ApprovalMode.FIRST and attempt > 1:
            return False
        return state.approved_attempt < attempt and patches.patched(patches.APPROVAL_GATES)

    async def hold(self) -> str | None:
        """Wait for a decision on the next attempt: a refusal's reason, or None to go on."""
        state = self._state
        assert state.plan is not None
        attempt = state.attempts + 1
        if state.approval_due_at is None:  # a continued run keeps the first run's deadline
            timeout = timedelta(seconds=state.plan.approval_timeout_s)
            state.approval_due_at = workflow.now() + timeout
        # The deadline stays out of `next_action_at`: that field plans a wait of remediation.
        due = f"{state.approval_due_at:%Y-%m-%d %H:%M:%S} UTC"
        state.next_action = f"awaiting approval until {due}: {call_summary(state, attempt)}"
        self._tracker.set_status(IncidentStatus.AWAITING_APPROVAL)
        await self._tracker.save_projection()
        remaining = max((state.approval_due_at - workflow.now()).total_seconds(), 0.001)
        decided = await self._waits.until(
            lambda: self._decided(attempt) or self._waits.continue_as_new_due(),
            remaining,
            f"approval of retry #{attempt}",
        )
        if not decided:
            return self._end(APPROVAL_TIMED_OUT)
        if state.approval_refusal is not None:
            return self._end(state.approval_refusal)
        if self._decided(attempt):
            self._end(None)
        return None

    def _decided(self, attempt: int) -> bool:
        state = self._state
        done = state.approved_attempt >= attempt or state.approval_refusal is not None
        return done or is_terminal(state)

    def _end(self, refusal: str | None) -> str | None:
        state = self._state
        state.approval_due_at, state.approval_refusal = None, None
        state.next_action, state.next_action_at = None, None
        return refusal

    def validate(self) -> None:
        """Refuse a decision unless the incident awaits one (the reason goes to the caller)."""
        state = self._state
        if state.status != IncidentStatus.AWAITING_APPROVAL or state.approval_refusal:
            status = visible_status(state)
            raise ApplicationError(
                f"incident is {status}, not awaiting approval", type="NotAwaitingApproval"
            )

    def decide(self, request: ApprovalRequest, *, approve: bool) -> str:
        """Approve the pending attempt or reject it; return the decision as recorded."""
        state = self._state
        note = operator_note("approved" if approve else "rejected", request)
        state.operator_note = note
        if approve:
            state.approved_attempt = state.attempts + 1
            state.next_action = f"approved: {call_summary(state, state.attempts + 1)}"
            state.next_action_at = None
            self._tracker.set_status(IncidentStatus.REMEDIATING)
        else:
            state.approval_refusal = f"approval {note}"
        self._tracker.unsaved = True
        self._tracker.refresh_details()
        return note
