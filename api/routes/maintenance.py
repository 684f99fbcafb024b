"""`/maintenance-windows`: planned quiet periods for matching failures."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.auth import OperatorPrincipal
from api.deps import IntakeDep, SessionDep
from api.routes.responses import problem_responses
from api.services import maintenance
from models.schemas.maintenance import MaintenanceWindowCreate, MaintenanceWindowOut

router = APIRouter(tags=["maintenance"])
ERRORS = problem_responses(401, 403, 404, 422)


@router.post(
    "/maintenance-windows",
    operation_id="createMaintenanceWindow",
    status_code=201,
    response_model=MaintenanceWindowOut,
    responses=ERRORS,
)
async def create(
    *,
    body: MaintenanceWindowCreate,
    principal: OperatorPrincipal,
    session: SessionDep,
    intake: IntakeDep,
) -> MaintenanceWindowOut:
    """Suppress or hold matching failures during the window (or each of its occurrences)."""
    row = await maintenance.create(
        session=session, tenant_id=principal.tenant_id, body=body, actor=principal.actor
    )
    intake.forget_registry(principal.tenant_id)
    return maintenance.describe(row, row.created_at)


@router.get(
    "/maintenance-windows",
    operation_id="listMaintenanceWindows",
    response_model=list[MaintenanceWindowOut],
    responses=ERRORS,
)
async def list_all(
    principal: OperatorPrincipal, session: SessionDep, include_past: bool = False
) -> list[MaintenanceWindowOut]:
    """Active and upcoming windows with their next occurrence (`include_past`: all of them)."""
    return await maintenance.list_windows(
        session=session, tenant_id=principal.tenant_id, include_past=include_past
    )


@router.delete(
    "/maintenance-windows/{window_id}",
    operation_id="endMaintenanceWindow",
    response_model=MaintenanceWindowOut,
    responses=ERRORS,
)
async def end(
    window_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep, intake: IntakeDep
) -> MaintenanceWindowOut:
    """End the window now; the row stays, naming who ended it. Held incidents are released."""
    row = await maintenance.end(
        session=session, tenant_id=principal.tenant_id, window_id=window_id, actor=principal.actor
    )
    intake.forget_registry(principal.tenant_id)
    return maintenance.describe(row, row.ended_at or row.created_at)
