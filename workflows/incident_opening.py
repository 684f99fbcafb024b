"""How a new incident opens from patch `open-in-one` on: one local activity opens, classifies,
analyses and plans it (activities/opening.py), where earlier histories ran four.

Deterministic workflow code: it runs inside the workflow sandbox.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import activity_calls
from workflows.activity_requests import decision_request
from workflows.event_intake import EventIntake
from workflows.incident_state import IncidentInput
from workflows.opening_payloads import Assessment, OpenAndAssessRequest


class IncidentOpening:
    """Opens the incident and keeps its assessment until the workflow applies it."""

    def __init__(self, inp: IncidentInput, intake: EventIntake) -> None:
        self._inp = inp
        self._intake = intake
        self._assessment: Assessment | None = None

    async def open_and_assess(self) -> str:
        """Open (and assess) the incident in one step; return why not ("" when opened)."""
        request, tentative = self._intake.opening_request()
        workflow_id = workflow.info().workflow_id
        decision = decision_request(self._inp, tentative, workflow_id=workflow_id)
        result = await activity_calls.open_and_assess(
            OpenAndAssessRequest(request, decision, tentative.last_failure_at)
        )
        refused = self._intake.take_opened(result.opened)
        if not refused:
            self._assessment = result.assessment
        return refused

    def assessed(self) -> bool:
        """Whether the opening brought an assessment not yet applied."""
        return self._assessment is not None

    def take_assessment(self) -> Assessment | None:
        """The assessment the opening brought, once; None: assess step by step."""
        assessment, self._assessment = self._assessment, None
        return assessment
