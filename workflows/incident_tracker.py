"""How an incident's status is shown and stored: search attribute, Web UI details, projection.

Deterministic workflow code: it runs inside the workflow sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

from vocabulary import IncidentStatus
from workflows import activity_calls, patches
from workflows.activity_payloads import ActionRequest, AttemptStart, RecordIncidentRequest
from workflows.activity_requests import projection_request
from workflows.incident_logic import bounded_delay, details_markdown, visible_status
from workflows.incident_state import IncidentInput, IncidentState

STATUS_KEY = SearchAttributeKey.for_keyword("IncidentStatus")
COUNTED_STATUSES = frozenset(
    {
        IncidentStatus.RESOLVED,
        IncidentStatus.ESCALATED,
        IncidentStatus.KILLED,
        IncidentStatus.BELOW_THRESHOLD,
    }
)


def count_incident(outcome: str) -> None:
    """Count a lifecycle outcome on the worker's metrics."""
    # The SDK drops metrics during replay, so this counts each transition once.
    workflow.metric_meter().create_counter(
        "awfdrs_incidents", "Incidents opened, resolved, escalated, killed, below threshold"
    ).add(1, {"outcome": outcome})


class IncidentTracker:
    """Keeps one incident's status visible (search attribute, details) and stored (projection)."""

    def __init__(self, inp: IncidentInput, state: IncidentState) -> None:
        self.inp = inp
        self.state = state
        # The projection is behind the state: the workflow saves it at its next safe point.
        self.unsaved = False
        self._new_cause = False
        self._published_status = ""

    def set_status(
        self, status: IncidentStatus, also: Sequence[SearchAttributeUpdate[Any]] = ()
    ) -> None:
        """Move to `status`, count and publish it, and mark the projection behind if it changed."""
        changed = status != self.state.status
        self.state.status = status
        if changed and status in COUNTED_STATUSES:
            count_incident(status)
        self.publish_status(also)
        if changed and patches.patched(patches.SYNC_ON_STATUS_CHANGE):
            self.unsaved = True

    def note_new_cause(self) -> None:
        """Store a transition row at the next save although the status stays the same."""
        if patches.patched(patches.RECORD_GATE_WAITS):
            self._new_cause = self.unsaved = True

    def close(self, status: IncidentStatus, reason: str) -> None:
        """End the incident with a terminal `status` and its reason; nothing is planned after."""
        state = self.state
        state.close_reason, state.paused = reason, False
        state.next_action, state.next_action_at = None, None
        self.set_status(status)
        self.unsaved = True

    def schedule(self, delay_s: float, label: str) -> None:
        """Plan the next action `delay_s` from now (bounded), named `label`."""
        self.state.next_action_at = workflow.now() + timedelta(seconds=bounded_delay(delay_s))
        self.state.next_action = label
        self.refresh_details()

    def publish_status(self, also: Sequence[SearchAttributeUpdate[Any]] = ()) -> None:
        """Upsert the `IncidentStatus` search attribute when the visible status changed (and
        the attributes `also` names, in the same upsert)."""
        updates = list(also)
        status = visible_status(self.state)
        if status != self._published_status:
            self._published_status = status
            updates.append(STATUS_KEY.value_set(status))
        if updates:
            workflow.upsert_search_attributes(updates)
        self.refresh_details()

    def refresh_details(self) -> None:
        """Render the incident's story so far as the Web UI's current details."""
        workflow.set_current_details(details_markdown(self.inp, self.state))

    def projection_request(
        self, *, closed: bool = False, state: IncidentState | None = None
    ) -> RecordIncidentRequest:
        """The projection of `state` (the incident's own by default) as of now."""
        info = workflow.info()
        request = projection_request(
            self.inp,
            state or self.state,
            workflow_id=info.workflow_id,
            run_id=info.first_execution_run_id,
            closed=closed,
        )
        # An operator's note explains one transition: the one this request records.
        self.state.operator_note = None
        request.new_cause, self._new_cause = self._new_cause, False
        return request

    async def save_projection(self, *, closed: bool = False) -> None:
        """Write the incident row (and its transition, if the status changed)."""
        self.unsaved = False
        await activity_calls.record_incident(self.projection_request(closed=closed))

    async def save_with_action(self, action: ActionRequest) -> None:
        """Write an attempt's pending action row and the incident row in one step."""
        self.unsaved = False
        await activity_calls.start_attempt(AttemptStart(action, self.projection_request()))
