"""What the one opening step (`open_and_assess`) is sent and answers.

Plain dataclasses only: imported by the workflow sandbox and the activities alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workflows.activity_payloads import (
    Analysis,
    Classification,
    DecisionRequest,
    OpenIncidentRequest,
    OpenIncidentResult,
    Plan,
)


@dataclass
class OpenAndAssessRequest:
    """Open the incident, then classify, analyse and plan it, in one local activity."""

    open: OpenIncidentRequest
    # Its `incident_id` is filled in by the activity once the incident is open.
    decision: DecisionRequest
    # The newest failure in hand: a stored success at or after it resolves the incident, so
    # there is nothing to assess.
    last_failure_at: datetime | None = None


@dataclass
class Assessment:
    """The three decisions of a new incident, as the separate steps answer them."""

    classification: Classification
    analysis: Analysis
    plan: Plan


@dataclass
class OpenAndAssessResult:
    """The opening's answer, and the assessment unless the workflow must assess step by step.

    No assessment when the incident was not opened, a stored success resolves it, or earlier
    runs of its workflow id counted events (the counts the decisions see may then change).
    """

    opened: OpenIncidentResult
    assessment: Assessment | None = None
