"""Admin routes: a tenant's own egress allow-list (AWFDRS_ADMIN_TOKEN)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.auth import AdminOnly
from api.deps import EgressGuardDep, SessionDep
from api.routes.responses import problem_responses
from api.services.egress import get_lists, lists_out, replace_lists
from models.schemas.egress import EgressListsIn, EgressListsOut

router = APIRouter(tags=["admin"], dependencies=[AdminOnly])
ERRORS = problem_responses(401, 403, 404, 409, 422)


@router.get(
    "/tenants/{tenant_id}/egress",
    operation_id="getTenantEgress",
    response_model=EgressListsOut,
    responses=ERRORS,
)
async def get_egress(
    tenant_id: uuid.UUID, session: SessionDep, guard: EgressGuardDep
) -> EgressListsOut:
    """Show the hosts and networks this tenant may call beyond the global allow-list."""
    row = await get_lists(session=session, tenant_id=tenant_id)
    return lists_out(tenant_id, row, guard)


@router.put(
    "/tenants/{tenant_id}/egress",
    operation_id="replaceTenantEgress",
    response_model=EgressListsOut,
    responses=ERRORS,
)
async def put_egress(
    tenant_id: uuid.UUID, body: EgressListsIn, session: SessionDep, guard: EgressGuardDep
) -> EgressListsOut:
    """Replace the tenant's own entries; the worker applies them within 5 seconds."""
    row = await replace_lists(session=session, tenant_id=tenant_id, body=body)
    return lists_out(tenant_id, row, guard)
