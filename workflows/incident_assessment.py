"""How `IncidentWorkflow` classifies, analyses and plans a new incident before remediating.

Deterministic workflow code: it runs inside the workflow sandbox.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

from vocabulary import IncidentStatus
from workflows import activity_calls as calls
from workflows import incident_logic as logic
from workflows import patches
from workflows.activity_requests import decision_request
from workflows.flap_damping import FlapDamping
from workflows.incident_opening import IncidentOpening
from workflows.incident_state import IncidentInput, IncidentState
from workflows.incident_tracker import IncidentTracker

SEVERITY_KEY = SearchAttributeKey.for_keyword("Severity")
ERROR_CODE_KEY = SearchAttributeKey.for_keyword("ErrorCode")


class IncidentAssessment:
    """Applies the opening's assessment, or assesses step by step (histories before it)."""

    def __init__(
        self,
        inp: IncidentInput,
        state: IncidentState,
        tracker: IncidentTracker,
        opening: IncidentOpening,
        flap: FlapDamping,
    ) -> None:
        self._inp = inp
        self._state = state
        self._tracker = tracker
        self._opening = opening
        self._flap = flap

    def quiet_opening(self) -> bool:
        """The opening brought the assessment: publish the status once, after it is applied."""
        return self._opening.assessed() and patches.patched(patches.QUIET_OPENING)

    async def assess(self) -> None:
        """Classify, analyse and plan (each a decision row); then remediation starts."""
        state = self._state
        # Applied in one go, the assessment needs no `analyzing` on show, and its search
        # attributes go with the next status in one upsert (each upsert is a history event).
        quiet = self.quiet_opening()
        if not quiet:
            self._tracker.set_status(IncidentStatus.ANALYZING)
        request = decision_request(self._inp, state, workflow_id=workflow.info().workflow_id)
        assessed = self._opening.take_assessment()  # brought by the opening (open-in-one)
        verdict = assessed.classification if assessed else await calls.classify(request)
        state.error_code, state.category = verdict.code, verdict.category
        state.severity, state.retryable = verdict.severity, verdict.retryable
        state.latest_decision = f"classified {verdict.summary}"
        labels: list[SearchAttributeUpdate[Any]] = [
            SEVERITY_KEY.value_set(state.severity),
            ERROR_CODE_KEY.value_set(state.error_code),
        ]
        if not quiet:
            workflow.upsert_search_attributes(labels)
        analysis = assessed.analysis if assessed else await calls.analyse(request)
        plan = assessed.plan if assessed else await calls.plan(request)
        state.plan, state.escalation = plan.retry, plan.escalation
        state.callback_url, state.call_timeout_s = plan.callback_url, plan.call_timeout_s
        state.latest_decision = f"{analysis.summary}; {plan.summary}"
        state.analysed = True
        if patches.patched(patches.RESPONDER_TARGETS):
            state.responders, state.notifications = True, plan.notifications
        if not logic.is_terminal(state):
            self._tracker.set_status(self._flap.status_after_plan(), also=labels if quiet else [])
        elif quiet:
            self._tracker.publish_status(also=labels)
        await self._tracker.save_projection()
        await self._flap.announce_opened()
