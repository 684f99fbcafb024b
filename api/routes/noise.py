"""`/reports/noise`: events, incidents and pages per workflow and vendor."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import OperatorPrincipal
from api.deps import EngineDep
from api.routes.report_window import report_window
from api.routes.responses import problem_responses
from api.services.noise import noise_report
from models.schemas.noise import NoiseReport
from models.schemas.storable import UtcDateTime

router = APIRouter(tags=["reports"])
DEFAULT_PERIOD = timedelta(days=1)


@router.get(
    "/reports/noise",
    operation_id="noiseReport",
    response_model=NoiseReport,
    responses=problem_responses(401, 403, 422),
)
async def noise(
    principal: OperatorPrincipal,
    engine: EngineDep,
    since: Annotated[UtcDateTime | None, Query(description="from (default: a day ago)")] = None,
    until: Annotated[UtcDateTime | None, Query(description="to (default: now)")] = None,
) -> NoiseReport:
    """Failures, suppressed/held/deferred events, incidents and pages, and their ratios."""
    start, end = report_window(since, until, default=DEFAULT_PERIOD)
    return await noise_report(engine=engine, tenant_id=principal.tenant_id, since=start, until=end)
