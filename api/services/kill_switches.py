"""Kill switches: activation stops running incidents in scope and suppresses new ones."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import NotFound
from models.registry import KillSwitch
from models.schemas.safety import KillSwitchCreate
from vocabulary import WORKFLOW_TYPE
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import KillRequest

log = logging.getLogger("awfdrs.kill_switches")
# Signals in flight at once: a switch over thousands of incidents lands in seconds, not minutes.
SIGNALS_AT_ONCE = 32


def scope_query(tenant_id: uuid.UUID, workflow: str, vendor: str | None) -> str:
    """Return the visibility query for running incidents a kill switch covers."""
    query = (
        f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running" '
        f'AND TenantId = "{tenant_id}" AND SourceWorkflow = "{workflow}"'
    )
    return query + (f' AND Vendor = "{vendor}"' if vendor else "")


async def signal_kill(*, temporal: Client, tenant_id: uuid.UUID, row: KillSwitch) -> int:
    """Signal `kill` to every running incident in the switch's scope; return how many."""
    reason = KillRequest(reason=f"kill switch: {row.reason}", by=row.actor)
    ids = [
        execution.id
        async for execution in temporal.list_workflows(
            scope_query(tenant_id, row.workflow, row.vendor)
        )
    ]
    gate = asyncio.Semaphore(SIGNALS_AT_ONCE)

    async def kill(workflow_id: str) -> bool:
        async with gate:
            try:
                handle = temporal.get_workflow_handle_for(IncidentWorkflow.run, workflow_id)
                await handle.signal(IncidentWorkflow.kill, reason)
            except RPCError as exc:  # finished meanwhile; the gate covers any we miss
                log.info("incident %s not signalled: %s", workflow_id, exc)
                return False
            return True

    return sum(await asyncio.gather(*(kill(workflow_id) for workflow_id in ids)))


async def activate(
    *, session: AsyncSession, tenant_id: uuid.UUID, body: KillSwitchCreate, actor: str
) -> KillSwitch:
    """Store an active kill switch."""
    row = KillSwitch(
        tenant_id=tenant_id,
        workflow=body.workflow,
        vendor=body.vendor,
        reason=body.reason,
        actor=actor,
        expires_at=body.expires_at,
    )
    session.add(row)
    await session.commit()
    return row


async def deactivate(
    *, session: AsyncSession, tenant_id: uuid.UUID, switch_id: uuid.UUID, actor: str
) -> KillSwitch:
    """Deactivate a kill switch, keeping the row as audit."""
    row = await session.get(KillSwitch, switch_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"kill switch {switch_id} not found")
    if row.active:
        row.active, row.deactivated_at, row.deactivated_by = False, datetime.now(UTC), actor
        await session.commit()
    return row


async def list_switches(
    *, session: AsyncSession, tenant_id: uuid.UUID, active: bool | None
) -> list[KillSwitch]:
    """Return the tenant's kill switches, newest first."""
    query = select(KillSwitch).where(KillSwitch.tenant_id == tenant_id)
    if active is not None:
        query = query.where(KillSwitch.active == active)
    result = await session.exec(query.order_by(col(KillSwitch.created_at).desc()).limit(500))
    return list(result.all())
