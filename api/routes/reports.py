"""`/reports/summary` and `/operator-actions`: what the system achieved, and who acted."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import OperatorPrincipal
from api.deps import EngineDep, SessionDep
from api.routes.report_window import report_window
from api.routes.responses import problem_responses
from api.services import operator_audit, reports
from models.schemas.reports import Bucket, GroupBy, OperatorActionOut, ReportSummary

router = APIRouter(tags=["reports"])
DEFAULT_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=366)


@router.get(
    "/reports/summary",
    operation_id="reportSummary",
    response_model=ReportSummary,
    responses=problem_responses(401, 403, 422),
)
async def summary(
    *,
    principal: OperatorPrincipal,
    engine: EngineDep,
    since: Annotated[datetime | None, Query(description="Default: `until` minus 7 days")] = None,
    until: Annotated[datetime | None, Query(description="Default: now")] = None,
    group_by: GroupBy | None = None,
    bucket: Annotated[Bucket, Query(description="Time bucket of `series`")] = "day",
) -> ReportSummary:
    """Incidents first seen in [since, until): volumes, shares, MTTA and MTTR percentiles."""
    start, end = report_window(since, until, default=DEFAULT_WINDOW, longest=MAX_WINDOW)
    return await reports.summary(
        engine=engine,
        tenant_id=principal.tenant_id,
        since=start,
        until=end,
        group_by=group_by,
        bucket=bucket,
    )


@router.get(
    "/operator-actions",
    operation_id="listOperatorActions",
    response_model=list[OperatorActionOut],
    responses=problem_responses(401, 403, 422),
)
async def operator_actions(
    principal: OperatorPrincipal,
    session: SessionDep,
    target: Annotated[str | None, Query(max_length=300, examples=["incident:6f1c…"])] = None,
) -> list[OperatorActionOut]:
    """The audit trail of operator actions (optionally on one target), newest first."""
    rows = await operator_audit.list_actions(
        session=session, tenant_id=principal.tenant_id, target=target
    )
    return [OperatorActionOut.model_validate(row, from_attributes=True) for row in rows]
