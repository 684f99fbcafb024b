"""`/kill-switches` and `/vendors`: the operator's emergency controls."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from api.auth import OperatorPrincipal
from api.deps import IntakeDep, PolicyDep, RedisDep, SessionDep, TemporalDep
from api.routes.responses import problem_responses
from api.services import kill_switches, operator_audit, vendors
from api.services.vendors import CircuitAction
from api.services.workflows import get_workflow_or_raise
from models.schemas.common import NAME_PATTERN
from models.schemas.safety import (
    KillSwitchActivated,
    KillSwitchCreate,
    KillSwitchOut,
    VendorOut,
)

router = APIRouter(tags=["safety"])
ERRORS = problem_responses(401, 403, 404, 422)
VendorName = Annotated[str, Path(pattern=NAME_PATTERN)]


@router.post(
    "/kill-switches",
    operation_id="activateKillSwitch",
    status_code=201,
    response_model=KillSwitchActivated,
    responses=ERRORS,
)
async def activate(
    *,
    body: KillSwitchCreate,
    principal: OperatorPrincipal,
    session: SessionDep,
    temporal: TemporalDep,
    intake: IntakeDep,
) -> KillSwitchActivated:
    """Kill every running incident in scope and suppress remediation for new events."""
    await get_workflow_or_raise(session=session, tenant_id=principal.tenant_id, name=body.workflow)
    row = await kill_switches.activate(
        session=session, tenant_id=principal.tenant_id, body=body, actor=principal.actor
    )
    intake.forget_registry(principal.tenant_id)
    signalled = await kill_switches.signal_kill(
        temporal=temporal, tenant_id=principal.tenant_id, row=row
    )
    activated = KillSwitchActivated(**row.model_dump(), incidents_signalled=signalled)
    await operator_audit.record(
        session=session,
        principal=principal,
        action="kill_switch.activate",
        target=f"kill-switch:{activated.id}",
        note=body.reason,
        detail={"workflow": body.workflow, "vendor": body.vendor, "signalled": signalled},
    )
    return activated


@router.get(
    "/kill-switches",
    operation_id="listKillSwitches",
    response_model=list[KillSwitchOut],
    responses=ERRORS,
)
async def list_all(
    principal: OperatorPrincipal, session: SessionDep, active: bool | None = None
) -> list[KillSwitchOut]:
    """List kill switches (optionally only active or inactive ones)."""
    rows = await kill_switches.list_switches(
        session=session, tenant_id=principal.tenant_id, active=active
    )
    return [KillSwitchOut(**row.model_dump()) for row in rows]


@router.delete(
    "/kill-switches/{switch_id}",
    operation_id="deactivateKillSwitch",
    response_model=KillSwitchOut,
    responses=ERRORS,
)
async def deactivate(
    switch_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep, intake: IntakeDep
) -> KillSwitchOut:
    """Deactivate a kill switch; the row stays as the audit record."""
    row = await kill_switches.deactivate(
        session=session, tenant_id=principal.tenant_id, switch_id=switch_id, actor=principal.actor
    )
    intake.forget_registry(principal.tenant_id)
    deactivated = KillSwitchOut(**row.model_dump())
    await operator_audit.record(
        session=session,
        principal=principal,
        action="kill_switch.deactivate",
        target=f"kill-switch:{switch_id}",
    )
    return deactivated


@router.get(
    "/vendors", operation_id="listVendors", response_model=list[VendorOut], responses=ERRORS
)
async def list_vendors(
    principal: OperatorPrincipal, redis: RedisDep, policies: PolicyDep
) -> list[VendorOut]:
    """Every configured vendor, and any with breaker state, with its live circuit state."""
    return await vendors.list_vendors(redis=redis, policies=policies, tenant_id=principal.tenant_id)


@router.post(
    "/vendors/{name}/circuit/{action}",
    operation_id="forceVendorCircuit",
    response_model=VendorOut,
    responses=ERRORS,
)
async def force(
    *,
    name: VendorName,
    action: CircuitAction,
    principal: OperatorPrincipal,
    redis: RedisDep,
    policies: PolicyDep,
    session: SessionDep,
) -> VendorOut:
    """Force the vendor's circuit open or closed, or reset it (closed, empty window)."""
    await vendors.require_known_vendor(
        session=session, policies=policies, tenant_id=principal.tenant_id, name=name
    )
    forced = await vendors.force_circuit(
        redis=redis, policies=policies, tenant_id=principal.tenant_id, name=name, action=action
    )
    await operator_audit.record(
        session=session, principal=principal, action=f"circuit.{action}", target=f"vendor:{name}"
    )
    return forced
