"""The operator audit trail: one row per operator action, naming who from the credential."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.principals import Principal, actor_for
from models.operator_action import OperatorAction

MAX_LISTED = 500


async def record(
    *,
    session: AsyncSession,
    principal: Principal,
    action: str,
    target: str,
    note: str | None = None,
    detail: dict[str, Any] | None = None,
) -> OperatorAction:
    """Store (and commit) who did what to which target; `note` is the caller's own words."""
    row = OperatorAction(
        tenant_id=principal.tenant_id,
        actor=actor_for(principal),
        action=action,
        target=target,
        note=note,
        detail=detail or {},
    )
    session.add(row)
    await session.commit()
    return row


async def list_actions(
    *, session: AsyncSession, tenant_id: uuid.UUID, target: str | None = None
) -> list[OperatorAction]:
    """Return the tenant's operator actions (optionally on one target), newest first."""
    query = select(OperatorAction).where(OperatorAction.tenant_id == tenant_id)
    if target is not None:
        query = query.where(OperatorAction.target == target)
    ordered = query.order_by(col(OperatorAction.created_at).desc()).limit(MAX_LISTED)
    return list((await session.exec(ordered)).all())
