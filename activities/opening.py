"""The opening step: open a new incident, then classify, analyse and plan it, in one activity.

One local activity and one pooled connection instead of four of each: the incident row is
stored first (and a stored success read after it, as `open_incident` does), then three reads
and one statement storing the four decision rows. The workflow takes this path from patch
`open-in-one` on (workflows/incident_opening.py).
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.analysis import AnalysisActivities
from activities.records import IncidentRecords
from workflows.activity_payloads import OpenIncidentResult
from workflows.opening_payloads import OpenAndAssessRequest, OpenAndAssessResult


class OpeningActivities:
    """Opens and assesses a new incident on one connection."""

    def __init__(
        self, *, engine: AsyncEngine, records: IncidentRecords, analysis: AnalysisActivities
    ) -> None:
        self._engine = engine
        self._records = records
        self._analysis = analysis

    @activity.defn(name="open_and_assess")
    async def open_and_assess(self, req: OpenAndAssessRequest) -> OpenAndAssessResult:
        """Open the incident; assess it unless the workflow must do so step by step."""
        async with self._engine.connect() as conn:
            opened = await self._records.open_on(conn, req.open)
            if not opened.incident_id or opened.watermarks or _resolved(req, opened):
                return OpenAndAssessResult(opened)
            decision = dataclasses.replace(req.decision, incident_id=opened.incident_id)
            assessment = await self._analysis.assess(conn, decision)
            await conn.commit()  # a no-op on the worker's autocommit engine
        return OpenAndAssessResult(opened, assessment)


def _resolved(req: OpenAndAssessRequest, opened: OpenIncidentResult) -> bool:
    """A success stored at or after the newest failure: the workflow closes the incident."""
    success_at, failure_at = opened.latest_success_at, req.last_failure_at
    return bool(success_at and failure_at and success_at >= failure_at)
