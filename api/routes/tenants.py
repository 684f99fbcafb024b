"""Admin routes: tenants and API keys (AWFDRS_ADMIN_TOKEN)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from api.auth import AdminOnly
from api.deps import PrincipalCacheDep, SecretBoxDep, SessionDep
from api.errors import Conflict, NotFound
from api.pagination import CursorQuery, LimitQuery, fetch_page
from api.routes.responses import problem_responses
from api.services.tenants import create_tenant, get_tenant_or_raise, issue_api_key
from models.schemas.common import Page
from models.schemas.tenants import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    TenantCreate,
    TenantCreated,
    TenantOut,
    TenantUpdate,
)
from models.tenant import ApiKey, Tenant

NULLABLE_CAPS = frozenset(
    {"max_open_incidents", "max_new_incidents_per_minute", "max_concurrent_callbacks"}
)
router = APIRouter(tags=["admin"], dependencies=[AdminOnly])
ERRORS = problem_responses(401, 403, 404, 409, 422)


@router.post(
    "/tenants",
    operation_id="createTenant",
    status_code=201,
    response_model=TenantCreated,
    responses=ERRORS,
)
async def create(body: TenantCreate, session: SessionDep, box: SecretBoxDep) -> TenantCreated:
    """Create a tenant; the response is the only place its first key and secret appear."""
    try:
        created = await create_tenant(
            session=session,
            box=box,
            name=body.name,
            ingest_rate_per_s=body.ingest_rate_per_s,
            key_scope=body.key_scope,
        )
        await session.commit()
    except IntegrityError:
        raise Conflict(f"a tenant named {body.name!r} already exists") from None
    secret = created.signing_secret
    return TenantCreated(
        **created.tenant.model_dump(),
        api_key=created.api_key,
        signing_secret_id=secret.id,
        signing_secret=secret.secret,
        hmac_secret=secret.hmac_secret,
    )


@router.get(
    "/tenants", operation_id="listTenants", response_model=Page[TenantOut], responses=ERRORS
)
async def list_all(
    session: SessionDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[TenantOut]:
    """List tenants, newest first."""
    query = select(Tenant)
    rows, following = await fetch_page(
        session, query, model=Tenant, at="created_at", limit=limit, cursor=cursor
    )
    return Page(items=[TenantOut(**r.model_dump()) for r in rows], next_cursor=following)


@router.patch(
    "/tenants/{tenant_id}", operation_id="updateTenant", response_model=TenantOut, responses=ERRORS
)
async def update(
    tenant_id: uuid.UUID, body: TenantUpdate, session: SessionDep, keys: PrincipalCacheDep
) -> TenantOut:
    """Rename, (de)activate or re-rate a tenant; deactivation makes its keys answer 403."""
    tenant = await get_tenant_or_raise(session=session, tenant_id=tenant_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is not None or field in NULLABLE_CAPS:  # a cap set to null: the default again
            setattr(tenant, field, value)
    tenant.updated_at = datetime.now(UTC)
    try:
        await session.commit()
    except IntegrityError:
        raise Conflict(f"a tenant named {body.name!r} already exists") from None
    keys.clear()
    return TenantOut(**tenant.model_dump())


@router.post(
    "/tenants/{tenant_id}/api-keys",
    operation_id="createApiKey",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=ERRORS,
)
async def create_key(
    tenant_id: uuid.UUID, body: ApiKeyCreate, session: SessionDep
) -> ApiKeyCreated:
    """Issue another key; its plaintext appears only in this response."""
    await get_tenant_or_raise(session=session, tenant_id=tenant_id)
    key, plaintext = await issue_api_key(
        session=session, tenant_id=tenant_id, scope=body.scope, name=body.name, owner=body.owner
    )
    await session.commit()
    return ApiKeyCreated(**key.model_dump(), api_key=plaintext)


@router.get(
    "/tenants/{tenant_id}/api-keys",
    operation_id="listApiKeys",
    response_model=list[ApiKeyOut],
    responses=ERRORS,
)
async def list_keys(tenant_id: uuid.UUID, session: SessionDep) -> list[ApiKeyOut]:
    """List a tenant's keys (never their secrets)."""
    await get_tenant_or_raise(session=session, tenant_id=tenant_id)
    rows = await session.exec(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(col(ApiKey.created_at))
    )
    return [ApiKeyOut(**row.model_dump()) for row in rows]


@router.delete(
    "/tenants/{tenant_id}/api-keys/{key_id}",
    operation_id="revokeApiKey",
    status_code=204,
    responses=ERRORS,
)
async def revoke_key(
    tenant_id: uuid.UUID, key_id: uuid.UUID, session: SessionDep, keys: PrincipalCacheDep
) -> Response:
    """Revoke a key at once; it answers 401 from then on."""
    key = await session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound(f"API key {key_id} not found")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.commit()
    keys.clear()
    return Response(status_code=204)
