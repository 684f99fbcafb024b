"""What the safety gate reads from PostgreSQL before every attempt, in one round trip.

The kill switches, the tenant, the workflow registration, the open maintenance windows and the
incident's step and error code come from one query; an incident naming a vendor can also have
the vendor's open incidents counted (`degraded_after`, activities/vendor_count.py) on the same
connection, so the count costs the incident no step of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.vendor_count import count_vendor_incidents
from rules.policy import DegradedAfter
from vocabulary import GateVerdict
from workflows.activity_payloads import GateDecision, GateRequest
from workflows.vendor_payloads import vendor_workflow_id

# A NULL `*_active` means the row is gone.
_REGISTRY = text("""
SELECT
  (SELECT reason FROM kill_switches
   WHERE tenant_id = :tenant_id AND workflow = :workflow AND active
     AND (vendor IS NULL OR vendor = :vendor) AND (expires_at IS NULL OR expires_at > now())
   ORDER BY created_at LIMIT 1) AS kill_reason,
  (SELECT active FROM tenants WHERE id = :tenant_id) AS tenant_active,
  (SELECT max_concurrent_callbacks FROM tenants WHERE id = :tenant_id) AS max_callbacks,
  (SELECT active FROM workflows WHERE tenant_id = :tenant_id AND name = :workflow)
    AS workflow_active,
  (SELECT coalesce(jsonb_agg(to_jsonb(m)), '[]'::jsonb) FROM maintenance_windows m
   WHERE m.tenant_id = :tenant_id AND m.ended_at IS NULL AND m.starts_at <= now()) AS windows,
  (SELECT jsonb_build_object('step', step, 'error_code', error_code) FROM incidents
   WHERE id = :incident_id) AS incident
""")


# What holds an incident the registry does not deny: the open maintenance windows and the
# incident's step and error code in, a wait until the covering window's end (or None) out.
MaintenanceHold = Callable[[Any, dict[str, str | None] | None], GateDecision | None]


@dataclass(frozen=True)
class RegistryAnswer:
    """The registry's answer for one attempt: a denial or a wait, or what the next checks need."""

    denial: GateDecision | None
    max_callbacks: int | None
    degraded: str = ""  # why the vendor counts as degraded ("" when it does not, or unasked)


async def read_registry(
    engine: AsyncEngine, req: GateRequest, degraded_after: DegradedAfter, hold: MaintenanceHold
) -> RegistryAnswer:
    """Read the registry for `req`; count the vendor's open incidents when it asks to and
    nothing denies or holds the attempt (a held incident is neither counted nor linked)."""
    params = {
        "tenant_id": uuid.UUID(req.tenant_id),
        "workflow": req.source_workflow,
        "vendor": req.vendor,
        "incident_id": _uuid_or_none(req.incident_id),
    }
    async with engine.connect() as conn:
        row = (await conn.execute(_REGISTRY, params)).one()
        denial = registry_denial(
            kill_reason=row.kill_reason,
            tenant_active=row.tenant_active,
            workflow_active=row.workflow_active,
            workflow=req.source_workflow,
        ) or hold(row.windows, row.incident)
        degraded = ""
        if denial is None and req.count_vendor and req.vendor and degraded_after.incidents:
            count = await count_vendor_incidents(
                conn,
                tenant_id=req.tenant_id,
                vendor=req.vendor,
                workflow_id=vendor_workflow_id(req.tenant_id, req.vendor),
                within_s=degraded_after.within_s,
            )
            degraded = count.cause(degraded_after)
    return RegistryAnswer(denial, row.max_callbacks, degraded)


def registry_denial(
    *,
    kill_reason: str | None,
    tenant_active: bool | None,
    workflow_active: bool | None,
    workflow: str,
) -> GateDecision | None:
    """Kill switch first (it kills), then a deactivated or deleted tenant or workflow."""
    if kill_reason is not None:
        return _deny(f"kill switch: {kill_reason}", kill=True)
    if not tenant_active:
        gone = "no longer exists" if tenant_active is None else "was deactivated"
        return _deny(f"tenant {gone}", suppress=True)
    if not workflow_active:
        gone = "is no longer registered" if workflow_active is None else "was deactivated"
        return _deny(f"workflow {workflow!r} {gone}", suppress=True)
    return None


def _deny(reason: str, *, kill: bool = False, suppress: bool = False) -> GateDecision:
    return GateDecision(GateVerdict.DENY, reason=reason, kill=kill, suppress=suppress)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
