"""State bookkeeping shared by `IncidentWorkflow`: waits, status, projection, continue-as-new.

Deterministic workflow code only: everything here runs inside the workflow sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey

from workflows.incident_logic import (
    bounded_delay,
    details_markdown,
    is_terminal,
    visible_status,
)
from workflows.incident_steps import IncidentSteps
from workflows.incident_types import (
    ActionRequest,
    CallbackOutcome,
    IncidentInput,
    IncidentState,
    RecordIncidentRequest,
)

STATUS_KEY = SearchAttributeKey.for_keyword("IncidentStatus")
COUNTED_STATUSES = ("resolved", "escalated", "killed")
# A run rolls over well before Temporal's hard limits (51,200 events / 50 MB), whatever the
# server's continue-as-new suggestion is configured to, and however fast signals arrive.
MAX_HISTORY_EVENTS = 10_000
MAX_HISTORY_BYTES = 8 * 1024 * 1024


def count_incident(outcome: str) -> None:
    """Count a lifecycle outcome on the worker's metrics."""
    # The SDK drops metrics during replay, so this counts each transition once.
    workflow.metric_meter().create_counter(
        "awfdrs_incidents", "Incidents opened, resolved, escalated and killed"
    ).add(1, {"outcome": outcome})


class IncidentCore:
    """The incident's state and how it is waited on, published and persisted."""

    _inp: IncidentInput
    _s: IncidentState
    _signals: int
    _dirty: bool
    _published_status: str
    _steps: IncidentSteps
    _callback: workflow.ActivityHandle[CallbackOutcome] | None

    async def _wait(self, done: Callable[[], bool], timeout_s: float | None, summary: str) -> bool:
        """Wait until `done()`; False when `timeout_s` elapsed first."""
        try:
            await workflow.wait_condition(done, timeout=timeout_s, timeout_summary=summary)
        except TimeoutError:
            return False
        return True

    async def _wait_until_next_action(self) -> None:
        s = self._s
        assert s.next_action_at is not None
        remaining = (s.next_action_at - workflow.now()).total_seconds()
        status = s.status
        fired = not await self._wait(
            lambda: self._interrupted() or self._s.status != status,
            remaining,
            s.next_action or "waiting",
        )
        if fired:
            s.next_action_at = None

    def _interrupted(self) -> bool:
        return is_terminal(self._s) or self._s.paused or self._dirty or self._roll_due()

    def _roll_due(self) -> bool:
        info = workflow.info()
        return (
            self._signals >= self._inp.max_signals_per_run
            or info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= MAX_HISTORY_EVENTS
            or info.get_current_history_size() >= MAX_HISTORY_BYTES
        )

    async def _roll(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._s.runs += 1
        workflow.continue_as_new(replace(self._inp, state=self._s))

    def _schedule(self, delay_s: float, label: str) -> None:
        self._s.next_action_at = workflow.now() + timedelta(seconds=bounded_delay(delay_s))
        self._s.next_action = label
        self._refresh()

    def _set_status(self, status: str) -> None:
        changed = status != self._s.status
        self._s.status = status
        if changed and status in COUNTED_STATUSES:
            count_incident(status)
        self._publish()
        # Every status change reaches the projection (and its transition log) promptly.
        if changed and workflow.patched("sync-on-status-change"):
            self._dirty = True

    def _close(self, status: str, reason: str) -> None:
        s = self._s
        s.close_reason, s.paused, s.next_action, s.next_action_at = reason, False, None, None
        self._set_status(status)
        if self._callback is not None and status == "killed":
            self._callback.cancel()
        self._dirty = True

    def _publish(self) -> None:
        status = visible_status(self._s)
        if status != self._published_status:
            self._published_status = status
            workflow.upsert_search_attributes([STATUS_KEY.value_set(status)])
        self._refresh()

    def _refresh(self) -> None:
        workflow.set_current_details(details_markdown(self._inp, self._s))

    async def _sync(self) -> None:
        self._dirty = False
        await self._steps.record(self._record_request())

    def _record_request(
        self, *, closed: bool = False, state: IncidentState | None = None
    ) -> RecordIncidentRequest:
        s, inp = state or self._s, self._inp
        return RecordIncidentRequest(
            tenant_id=inp.tenant_id,
            workflow_id=workflow.info().workflow_id,
            run_id=workflow.info().first_execution_run_id,
            source_workflow=inp.source_workflow,
            step=inp.step,
            signature=inp.signature,
            error_code=s.error_code or inp.error_code,
            vendor=inp.vendor,
            status=visible_status(s),
            severity=s.severity,
            category=s.category,
            event_count=s.event_count,
            attempts=s.attempts,
            first_seen_at=s.first_seen_at,
            last_seen_at=s.last_seen_at,
            closed=closed,
            reason=(s.close_reason or s.gate_reason or s.latest_action or s.latest_decision or "")[
                :2000
            ],
            watermarks=dict(s.watermarks),
        )

    def _action(
        self, attempt: int, key: str, status: str, result: dict[str, object] | None = None
    ) -> ActionRequest:
        return ActionRequest(
            tenant_id=self._inp.tenant_id,
            incident_id=self._s.incident_id,
            action_type="retry",
            attempt=attempt,
            idempotency_key=key,
            status=status,
            parameters={"callback_url": self._s.callback_url},
            result=dict(result or {}),
        )
