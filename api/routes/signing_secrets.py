"""Admin routes: a tenant's webhook signing secrets (AWFDRS_ADMIN_TOKEN)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from api.auth import AdminOnly
from api.deps import SecretBoxDep, SessionDep
from api.routes.responses import problem_responses
from api.services import signing_secrets
from api.services.tenants import get_tenant_or_raise
from models.schemas.tenants import SigningSecretCreated, SigningSecretOut

router = APIRouter(tags=["admin"], dependencies=[AdminOnly])
ERRORS = problem_responses(401, 403, 404, 409, 422)


@router.post(
    "/tenants/{tenant_id}/signing-secrets",
    operation_id="createSigningSecret",
    status_code=201,
    response_model=SigningSecretCreated,
    responses=ERRORS,
)
async def create(
    tenant_id: uuid.UUID, session: SessionDep, box: SecretBoxDep
) -> SigningSecretCreated:
    """Add a secret; both old and new sign every request until the old one is retired."""
    await get_tenant_or_raise(session=session, tenant_id=tenant_id)
    created = await signing_secrets.issue_signing_secret(
        session=session, box=box, tenant_id=tenant_id
    )
    await session.commit()
    return created


@router.get(
    "/tenants/{tenant_id}/signing-secrets",
    operation_id="listSigningSecrets",
    response_model=list[SigningSecretOut],
    responses=ERRORS,
)
async def list_all(tenant_id: uuid.UUID, session: SessionDep) -> list[SigningSecretOut]:
    """List a tenant's secrets, masked, retired ones included (never their values)."""
    await get_tenant_or_raise(session=session, tenant_id=tenant_id)
    return await signing_secrets.list_signing_secrets(session=session, tenant_id=tenant_id)


@router.delete(
    "/tenants/{tenant_id}/signing-secrets/{secret_id}",
    operation_id="retireSigningSecret",
    status_code=204,
    responses=ERRORS,
)
async def retire(tenant_id: uuid.UUID, secret_id: uuid.UUID, session: SessionDep) -> Response:
    """Retire a secret: it signs nothing from the next request on; 409 for the last one."""
    await get_tenant_or_raise(session=session, tenant_id=tenant_id)
    await signing_secrets.retire_signing_secret(
        session=session, tenant_id=tenant_id, secret_id=secret_id
    )
    return Response(status_code=204)
