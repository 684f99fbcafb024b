"""Operator routes: the tenant's PagerDuty signing secrets and Opsgenie inbound tokens."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Response

from api.auth import OperatorPrincipal
from api.deps import SecretBoxDep, SessionDep
from api.routes.responses import problem_responses
from api.services import responder_secrets as service
from models.responder_webhook import ResponderSystem
from models.schemas.responders import (
    ResponderSecretCreate,
    ResponderSecretCreated,
    ResponderSecretOut,
)

# Operator scope: these secrets let a responder acknowledge or resolve the tenant's
# incidents, which an operator key may already do itself.
router = APIRouter(tags=["integrations"])
ERRORS = problem_responses(401, 403, 404, 422)
PATH = "/{system}/webhook-secrets"


@router.post(
    PATH,
    operation_id="createResponderSecret",
    status_code=201,
    response_model=ResponderSecretCreated,
    responses=ERRORS,
)
async def create(
    system: ResponderSystem,
    principal: OperatorPrincipal,
    session: SessionDep,
    box: SecretBoxDep,
    body: Annotated[ResponderSecretCreate | None, Body()] = None,
) -> ResponderSecretCreated:
    """Accept a secret besides the active ones (rotation: add the new, retire the old)."""
    created = await service.store_responder_secret(
        session=session,
        box=box,
        tenant_id=principal.tenant_id,
        system=system,
        given=body.secret if body else None,
    )
    await session.commit()
    return created


@router.get(
    PATH,
    operation_id="listResponderSecrets",
    response_model=list[ResponderSecretOut],
    responses=ERRORS,
)
async def list_all(
    system: ResponderSystem, principal: OperatorPrincipal, session: SessionDep
) -> list[ResponderSecretOut]:
    """List the tenant's secrets for the system, masked, retired ones included."""
    return await service.list_responder_secrets(
        session=session, tenant_id=principal.tenant_id, system=system
    )


@router.delete(
    PATH + "/{secret_id}",
    operation_id="retireResponderSecret",
    status_code=204,
    responses=ERRORS,
)
async def retire(
    system: ResponderSystem, secret_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep
) -> Response:
    """Retire a secret: webhooks signed with it are refused with 401 from now on."""
    await service.retire_responder_secret(
        session=session, tenant_id=principal.tenant_id, system=system, secret_id=secret_id
    )
    return Response(status_code=204)
