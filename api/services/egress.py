"""Tenants' own egress allow-lists, as admins read and replace them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import Conflict
from api.services.tenants import get_tenant_or_raise
from models.egress import TenantEgressList
from models.schemas.egress import EgressListsIn, EgressListsOut
from rules.egress import EgressGuard


def lists_out(
    tenant_id: uuid.UUID, row: TenantEgressList | None, guard: EgressGuard
) -> EgressListsOut:
    """Render a tenant's entries (none stored: empty lists) beside the global ones."""
    return EgressListsOut(
        tenant_id=tenant_id,
        hosts=list(row.hosts) if row else [],
        networks=list(row.networks) if row else [],
        updated_at=row.updated_at if row else None,
        global_hosts=guard.global_hosts,
        global_networks=guard.global_networks,
    )


async def get_lists(*, session: AsyncSession, tenant_id: uuid.UUID) -> TenantEgressList | None:
    """Return the tenant's stored entries, or None when it has none; 404 for no such tenant."""
    await get_tenant_or_raise(session=session, tenant_id=tenant_id)
    return await session.get(TenantEgressList, tenant_id)


async def replace_lists(
    *, session: AsyncSession, tenant_id: uuid.UUID, body: EgressListsIn
) -> TenantEgressList:
    """Store the tenant's entries in place of the previous ones (duplicates dropped)."""
    row = await get_lists(session=session, tenant_id=tenant_id)
    if row is None:
        row = TenantEgressList(tenant_id=tenant_id)
        session.add(row)
    row.hosts = list(dict.fromkeys(body.hosts))
    row.networks = list(dict.fromkeys(body.networks))
    row.updated_at = datetime.now(UTC)
    try:
        await session.commit()
    except IntegrityError:  # another admin created the row at the same moment
        raise Conflict("the tenant's egress list changed concurrently; read it and retry") from None
    return row
