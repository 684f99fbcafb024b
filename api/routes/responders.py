"""`/escalation-policies` and `/notify/test`: what pages whom, and a test message to a target."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import Field
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.responder_sender import ResponderSender
from activities.signing import WebhookSigner
from api.auth import OperatorPrincipal
from api.deps import EgressGuardDep, EngineDep, PolicyDep, SecretBoxDep, SessionDep
from api.principals import Principal
from api.routes.responses import problem_responses
from api.services import operator_audit
from api.services import responders as service
from models.schemas.common import NAME_PATTERN, StrictBody
from rules.targets import EscalationPolicy

router = APIRouter(tags=["responders"])
ERRORS = problem_responses(401, 403, 404, 422)
PolicyName = Annotated[str, Path(pattern=NAME_PATTERN)]


class NotifyTestIn(StrictBody):
    """Which configured target to send a test message to."""

    policy: str = Field(default=service.DEFAULT_POLICY, pattern=NAME_PATTERN)
    level: int = Field(ge=0, le=10, description="1-10: a level's target; 0: notification targets")
    index: int = Field(default=0, ge=-1, le=99, description="the target's position; -1: fallback")


async def _audit(
    session: AsyncSession,
    principal: Principal,
    action: str,
    name: str,
    policy: EscalationPolicy | None = None,
) -> None:
    """Who changed which policy (its shape only: credentials stay out of the audit trail)."""
    detail = {"levels": len(policy.levels), "notify_rules": len(policy.notify)} if policy else {}
    await operator_audit.record(
        session=session,
        principal=principal,
        action=action,
        target=f"escalation-policy:{name}",
        detail=detail,
    )


@router.get("/escalation-policies", operation_id="listEscalationPolicies", responses=ERRORS)
async def list_policies(
    principal: OperatorPrincipal, session: SessionDep, box: SecretBoxDep, policies: PolicyDep
) -> list[dict[str, Any]]:
    """The default policy and every workflow's own, one line each (no credentials)."""
    found = await service.all_policies(session, box, policies.escalation, principal.tenant_id)
    return [service.summary(name, kind, policy) for name, kind, policy in found]


@router.put(
    "/escalation-policies/tenant", operation_id="putTenantEscalationPolicy", responses=ERRORS
)
async def put_tenant_policy(
    body: EscalationPolicy, principal: OperatorPrincipal, session: SessionDep,
    box: SecretBoxDep, guard: EgressGuardDep,
) -> dict[str, Any]:  # fmt: skip
    """Set the tenant's own policy: levels for workflows without one, rules for all of them."""
    await service.set_tenant_policy(session, box, guard, principal.tenant_id, body)
    await _audit(session, principal, "escalation_policy.put", service.TENANT_POLICY, body)
    return service.shown(service.TENANT_POLICY, body)


@router.delete(
    "/escalation-policies/tenant",
    operation_id="deleteTenantEscalationPolicy",
    status_code=204,
    responses=ERRORS,
)
async def delete_tenant_policy(
    principal: OperatorPrincipal, session: SessionDep, box: SecretBoxDep, guard: EgressGuardDep
) -> Response:
    """Remove the tenant's own policy (rules/escalation.yaml applies again)."""
    await service.set_tenant_policy(session, box, guard, principal.tenant_id, None)
    await _audit(session, principal, "escalation_policy.delete", service.TENANT_POLICY)
    return Response(status_code=204)


@router.put("/escalation-policies/{name}", operation_id="putEscalationPolicy", responses=ERRORS)
async def put_named_policy(
    name: PolicyName, body: EscalationPolicy, principal: OperatorPrincipal, session: SessionDep,
    box: SecretBoxDep, guard: EgressGuardDep,
) -> dict[str, Any]:  # fmt: skip
    """Create or replace a named policy, which workflows use as `escalation_policy: "<name>"`."""
    await service.put_named_policy(session, box, guard, principal.tenant_id, name, body)
    await _audit(session, principal, "escalation_policy.put", name, body)
    return service.shown(name, body)


@router.delete(
    "/escalation-policies/{name}",
    operation_id="deleteEscalationPolicy",
    status_code=204,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def delete_named_policy(
    name: PolicyName, principal: OperatorPrincipal, session: SessionDep
) -> Response:
    """Remove a named policy that no workflow uses."""
    await service.delete_named_policy(session, principal.tenant_id, name)
    await _audit(session, principal, "escalation_policy.delete", name)
    return Response(status_code=204)


@router.get("/escalation-policies/{name}", operation_id="getEscalationPolicy", responses=ERRORS)
async def get_policy(
    name: PolicyName,
    principal: OperatorPrincipal,
    session: SessionDep,
    box: SecretBoxDep,
    policies: PolicyDep,
) -> dict[str, Any]:
    """One policy whole, every credential shown as `••••last4`."""
    default = policies.escalation
    policy = await service.find_policy(session, box, default, principal.tenant_id, name)
    return service.shown(name, policy)


@router.post("/notify/test", operation_id="notifyTest", responses=ERRORS)
async def notify_test(
    body: NotifyTestIn, principal: OperatorPrincipal, session: SessionDep, box: SecretBoxDep,
    policies: PolicyDep, engine: EngineDep, guard: EgressGuardDep,
) -> dict[str, Any]:  # fmt: skip
    """Send a test message to one configured target through the delivery code pages use."""
    tenant_id, default = principal.tenant_id, policies.escalation
    policy = await service.find_policy(session, box, default, tenant_id, body.policy)
    target = service.pick(policy, body.level, body.index)
    async with service.outbound_client() as http:
        signer = WebhookSigner(engine=engine, box=box)
        sender = ResponderSender(
            http=http, engine=engine, guard=guard, signer=signer, box=box, default_policy=default
        )
        registration = await sender.registration(str(tenant_id), body.policy)
        sent = await service.send_test(
            sender, tenant_id, target, webhook_url=registration.webhook_url
        )
    return {**body.model_dump(), "target_type": target.type, "sent": sent}
