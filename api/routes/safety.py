"""`/kill-switches` and `/vendors`: the operator's emergency controls."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from sqlalchemy import exists
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.auth import OperatorPrincipal, Principal
from api.deps import RedisDep, SessionDep, TemporalDep
from api.errors import NotFound
from api.intake import Intake
from api.routes.responses import problem_responses
from api.services import kill_switches
from api.services.workflows import get_workflow_or_raise
from models.event import Event
from models.incident import Incident
from models.schemas.common import NAME_PATTERN
from models.schemas.safety import (
    KillSwitchActivated,
    KillSwitchCreate,
    KillSwitchOut,
    VendorOut,
)
from rules.circuit_breaker import CircuitBreaker, breaker_key, breaker_prefix
from rules.policy import Policies

router = APIRouter(tags=["safety"])
ERRORS = problem_responses(401, 403, 404, 422)
VendorName = Annotated[str, Path(pattern=NAME_PATTERN)]
FORCE = {"open": "forced_open", "close": "forced_closed", "reset": "closed"}


def _actor(principal: Principal) -> str:
    return f"api-key:{principal.key_id}"


@router.post(
    "/kill-switches",
    operation_id="activateKillSwitch",
    status_code=201,
    response_model=KillSwitchActivated,
    responses=ERRORS,
)
async def activate(
    body: KillSwitchCreate,
    principal: OperatorPrincipal,
    session: SessionDep,
    temporal: TemporalDep,
    request: Request,
) -> KillSwitchActivated:
    """Kill every running incident in scope and suppress remediation for new events."""
    await get_workflow_or_raise(session=session, tenant_id=principal.tenant_id, name=body.workflow)
    row = await kill_switches.activate(
        session=session, tenant_id=principal.tenant_id, body=body, actor=_actor(principal)
    )
    intake: Intake = request.app.state.intake
    intake.workflows.clear()
    signalled = await kill_switches.signal_kill(
        temporal=temporal, tenant_id=principal.tenant_id, row=row
    )
    return KillSwitchActivated(**row.model_dump(), incidents_signalled=signalled)


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
    switch_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep, request: Request
) -> KillSwitchOut:
    """Deactivate a kill switch; the row stays as the audit record."""
    row = await kill_switches.deactivate(
        session=session, tenant_id=principal.tenant_id, switch_id=switch_id, actor=_actor(principal)
    )
    intake: Intake = request.app.state.intake
    intake.workflows.clear()
    return KillSwitchOut(**row.model_dump())


async def _vendor(request: Request, redis: RedisDep, tenant_id: uuid.UUID, name: str) -> VendorOut:
    policies: Policies = request.app.state.policies
    settings = policies.vendors.for_vendor(name)
    state, open_for = await CircuitBreaker(redis).state(breaker_key(str(tenant_id), name))
    breaker = settings.circuit_breaker
    return VendorOut(
        name=name,
        circuit_state=state,
        open_for_s=round(open_for, 3),
        failure_rate_threshold=breaker.failure_rate_threshold,
        window_size=breaker.window_size,
        minimum_calls=breaker.minimum_calls,
        open_duration_s=breaker.open_duration_s,
        half_open_probes=breaker.half_open_probes,
        rate_limit_per_s=settings.rate_limit_per_s,
        call_timeout_s=settings.call_timeout_s,
    )


@router.get(
    "/vendors", operation_id="listVendors", response_model=list[VendorOut], responses=ERRORS
)
async def list_vendors(
    principal: OperatorPrincipal, redis: RedisDep, request: Request
) -> list[VendorOut]:
    """Every configured vendor, and any with breaker state, with its live circuit state."""
    policies: Policies = request.app.state.policies
    names = set(policies.vendors.vendors)
    prefix = breaker_prefix(str(principal.tenant_id))
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        names.add((key.decode() if isinstance(key, bytes) else str(key))[len(prefix) :])
    return [await _vendor(request, redis, principal.tenant_id, name) for name in sorted(names)]


async def _require_known_vendor(
    session: AsyncSession, policies: Policies, tenant_id: uuid.UUID, name: str
) -> None:
    """404 unless the policy files, or the tenant's incidents or events, name the vendor."""
    # A typo must not create a breaker that then shows up, forced open, as a phantom vendor.
    if name in policies.vendors.vendors:
        return
    for model in (Incident, Event):  # incidents first: they have a (tenant, vendor) index
        named = exists().where(col(model.tenant_id) == tenant_id, col(model.vendor) == name)
        if (await session.exec(select(named))).first():
            return
    raise NotFound(
        f"vendor {name!r} is unknown: not in the policy files, and no event or incident names it"
    )


@router.post(
    "/vendors/{name}/circuit/{action}",
    operation_id="forceVendorCircuit",
    response_model=VendorOut,
    responses=ERRORS,
)
async def force(
    name: VendorName,
    action: Literal["open", "close", "reset"],
    principal: OperatorPrincipal,
    redis: RedisDep,
    session: SessionDep,
    request: Request,
) -> VendorOut:
    """Force the vendor's circuit open or closed, or reset it (closed, empty window)."""
    await _require_known_vendor(session, request.app.state.policies, principal.tenant_id, name)
    await CircuitBreaker(redis).force(breaker_key(str(principal.tenant_id), name), FORCE[action])  # type: ignore[arg-type]
    return await _vendor(request, redis, principal.tenant_id, name)
