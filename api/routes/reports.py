"""`/reports/summary` and `/operator-actions`: what the system achieved, and who acted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from api.auth import OperatorPrincipal
from api.deps import EngineDep, SessionDep
from api.routes.responses import problem_responses
from api.services import operator_audit, reports
from models.schemas.reports import Bucket, GroupBy, OperatorActionOut, ReportSummary

router = APIRouter(tags=["reports"])
DEFAULT_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=366)


def _aware(value: datetime | None) -> datetime | None:
    """Read a timestamp without an offset as UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """The report's [start, end): defaults filled in, order and length checked (422)."""
    end = until or datetime.now(UTC)
    try:
        start = since or end - DEFAULT_WINDOW
    except OverflowError:  # `until` in the first week of year 1
        raise _invalid("until", "is too early to count a default window back from") from None
    if start >= end:
        raise _invalid("since", "must be before until")
    if end - start > MAX_WINDOW:
        raise _invalid("since", f"the window may span at most {MAX_WINDOW.days} days")
    return start, end


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error", "input": None}]
    )


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
    start, end = _window(_aware(since), _aware(until))
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
