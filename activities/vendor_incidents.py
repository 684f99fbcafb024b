"""Vendor incidents: link a child to its tenant's vendor incident, keep that incident's row,
read the vendor's breaker and the tenant's first escalation level.

The vendor incident's row is created here, by the first child that links, under an advisory
lock per workflow id, so twelve children linking at once find one row; the workflow adopts the
row's id from the `child_linked` signal that starts it (docs/ARCHITECTURE.md, Vendor incidents).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)

from activities.records import running_workflow_id
from activities.responder_sender import ResponderSender
from activities.vendor_count import VendorCount, count_vendor_incidents
from rules.circuit_breaker import CircuitBreaker, breaker_key
from rules.policy import DegradedAfter, VendorPolicies
from vocabulary import VENDOR_WORKFLOW_TYPE, IncidentStatus, Severity, VendorSignal
from workflows.vendor_payloads import (
    BreakerReading,
    ChildLink,
    LinkRequest,
    LinkResult,
    PageTargets,
    VendorIncidentInput,
    VendorRecordRequest,
    VendorRef,
    vendor_workflow_id,
)

log = logging.getLogger("awfdrs.vendor_incidents")
ERROR_CODE = "VENDOR_DEGRADED"
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:workflow_id))")
# The child must be an incident of this tenant naming this vendor: a forged link opens nothing.
_CHILD = text("""
SELECT id FROM incidents WHERE id = :child AND tenant_id = :tenant_id AND vendor = :vendor
""")
_OPEN_PARENT = text("""
SELECT id FROM incidents WHERE tenant_id = :tenant_id AND workflow_id = :workflow_id
  AND closed_at IS NULL ORDER BY created_at DESC LIMIT 1
""")
_NEW_PARENT = text(f"""
INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, severity, category, title,
                       source_workflow, signature, error_code, vendor, first_seen_at,
                       last_seen_at, updated_at, watermarks)
VALUES (gen_random_uuid(), :tenant_id, :workflow_id, gen_random_uuid()::text,
        '{IncidentStatus.OPEN}', '{Severity.HIGH}', 'vendor', :title, :source, :source,
        '{ERROR_CODE}', :vendor, now(), now(), now(), '{{}}'::jsonb)
RETURNING id
""")
_LINK_CHILD = text("""
UPDATE incidents SET parent_incident_id = :parent, updated_at = now()
WHERE id = :child AND tenant_id = :tenant_id
""")
_TRANSITION = text("""
INSERT INTO incident_transitions (tenant_id, incident_id, status, reason)
SELECT tenant_id, id, status, :reason FROM incidents WHERE id = :incident AND tenant_id = :tenant_id
""")
_RECORD = text("""
WITH previous AS (SELECT status FROM incidents WHERE id = :incident AND tenant_id = :tenant_id),
updated AS (
    UPDATE incidents SET status = :status, event_count = :children, attempts = :probes,
        last_seen_at = now(), updated_at = now(),
        closed_at = CASE WHEN :closed THEN coalesce(closed_at, now()) END
    WHERE id = :incident AND tenant_id = :tenant_id AND workflow_id = :workflow_id
    RETURNING tenant_id, id, status
)
INSERT INTO incident_transitions (tenant_id, incident_id, status, reason)
SELECT updated.tenant_id, updated.id, updated.status, :reason FROM updated
WHERE CAST(:new_cause AS boolean)
   OR NOT EXISTS (SELECT 1 FROM previous WHERE previous.status = updated.status)
""")
TENANT_ID_KEY = SearchAttributeKey.for_keyword("TenantId")
VENDOR_KEY = SearchAttributeKey.for_keyword("Vendor")
STATUS_KEY = SearchAttributeKey.for_keyword("IncidentStatus")


class VendorIncidentActivities:
    """Links children to vendor incidents and keeps the vendor incidents' rows."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: Redis,
        sender: ResponderSender,
        vendors: VendorPolicies,
    ) -> None:
        self._engine = engine
        self._breaker = CircuitBreaker(redis)
        self._sender = sender
        self._vendors = vendors

    @activity.defn(name="link_vendor_incident")
    async def link(self, req: LinkRequest) -> LinkResult:
        """Find or open the tenant's vendor incident, link the child to it and signal it."""
        workflow_id = vendor_workflow_id(req.tenant_id, req.vendor)
        link = await self._link_rows(req, workflow_id)
        if link is None:
            log.warning("refused to link an incident of another tenant or vendor: %s", req)
            return LinkResult("", "")
        return await self._start(req, workflow_id, link)

    @activity.defn(name="link_vendor_incident_by_count")
    async def link_by_count(self, req: LinkRequest) -> LinkResult:
        """Link the child when the tenant's vendor incident is open or enough open incidents
        name the vendor (`degraded_after`); otherwise do nothing (an empty result)."""
        after = self._vendors.for_vendor(req.vendor).degraded_after
        if after.incidents == 0:
            return LinkResult("", "")
        workflow_id = vendor_workflow_id(req.tenant_id, req.vendor)
        async with self._engine.connect() as conn:
            found = await self._count(conn, req, workflow_id, after)
        if not found.cause(after):
            return LinkResult("", "")
        # Counted again under the link's lock: a vendor incident that ended meanwhile reset it.
        link = await self._link_rows(req, workflow_id, after)
        return LinkResult("", "") if link is None else await self._start(req, workflow_id, link)

    async def _count(
        self, conn: AsyncConnection, req: LinkRequest, workflow_id: str, after: DegradedAfter
    ) -> VendorCount:
        return await count_vendor_incidents(
            conn,
            tenant_id=req.tenant_id,
            vendor=req.vendor,
            workflow_id=workflow_id,
            within_s=after.within_s,
        )

    async def _start(self, req: LinkRequest, workflow_id: str, link: ChildLink) -> LinkResult:
        """Signal-with-start the tenant's vendor incident with `child_linked`."""
        await activity.client().start_workflow(
            VENDOR_WORKFLOW_TYPE,
            VendorIncidentInput(req.tenant_id, req.vendor),
            id=workflow_id,
            task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=VendorSignal.CHILD_LINKED,
            start_signal_args=[link],
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(TENANT_ID_KEY, req.tenant_id),
                    SearchAttributePair(VENDOR_KEY, req.vendor),
                    SearchAttributePair(STATUS_KEY, IncidentStatus.OPEN.value),
                ]
            ),
            static_summary=f"vendor incident · {req.vendor} degraded",
        )
        return LinkResult(workflow_id, link.parent_incident_id)

    async def _link_rows(
        self, req: LinkRequest, workflow_id: str, after: DegradedAfter | None = None
    ) -> ChildLink | None:
        """The child linked to the open vendor incident (a new row if none is open); None when
        refused or, with `after`, when the count no longer holds under the lock."""
        # One transaction (the worker's engine autocommits each statement): the advisory lock
        # holds until the commit, so a child linking at the same moment finds this row.
        async with self._engine.connect() as plain:
            conn = await plain.execution_options(isolation_level="READ COMMITTED")
            async with conn.begin():
                await conn.execute(_LOCK, {"workflow_id": workflow_id})
                link = ChildLink(
                    req.incident_id, req.workflow_id, req.source_workflow, "", req.cause
                )
                if after is not None:
                    found = await self._count(conn, req, workflow_id, after)
                    link.cause, link.by_count = found.cause(after), not found.parent_open
                    if not link.cause:
                        return None
                link.parent_incident_id = await self._link_locked(conn, link, req, workflow_id)
                return link if link.parent_incident_id else None

    async def _link_locked(
        self, conn: AsyncConnection, link: ChildLink, req: LinkRequest, workflow_id: str
    ) -> str:
        """Under the lock: the vendor incident's row (opened if none is), the child linked."""
        tenant_id = uuid.UUID(req.tenant_id)
        child = uuid.UUID(req.incident_id)
        found = await conn.execute(
            _CHILD, {"child": child, "tenant_id": tenant_id, "vendor": req.vendor}
        )
        if found.first() is None:
            return ""
        parent = await self._open_parent(conn, req, workflow_id, link.cause)
        await conn.execute(_LINK_CHILD, {"parent": parent, "child": child, "tenant_id": tenant_id})
        reason = f"held by vendor incident {parent} ({req.vendor}: {link.cause})"
        await conn.execute(
            _TRANSITION, {"incident": child, "tenant_id": tenant_id, "reason": reason}
        )
        return str(parent)

    async def _open_parent(
        self, conn: AsyncConnection, req: LinkRequest, workflow_id: str, cause: str
    ) -> uuid.UUID:
        params: dict[str, Any] = {"tenant_id": uuid.UUID(req.tenant_id), "workflow_id": workflow_id}
        row = (await conn.execute(_OPEN_PARENT, params)).first()
        if row is not None:
            return uuid.UUID(str(row.id))
        source = f"vendor:{req.vendor}"[:64]
        params |= {"title": f"{req.vendor} degraded"[:500], "source": source, "vendor": req.vendor}
        parent = uuid.UUID(str((await conn.execute(_NEW_PARENT, params)).scalar_one()))
        reason = f"{req.vendor} degraded: {cause} (first: incident {req.incident_id})"
        await conn.execute(
            _TRANSITION, {"incident": parent, "tenant_id": params["tenant_id"], "reason": reason}
        )
        return parent

    @activity.defn(name="record_vendor_incident")
    async def record(self, req: VendorRecordRequest) -> None:
        """Refresh the vendor incident's row; a new status or cause adds a transition row."""
        params = {
            "incident": uuid.UUID(req.incident_id),
            "tenant_id": uuid.UUID(req.tenant_id),
            "status": req.status.value,
            "children": req.children,
            "probes": req.probes,
            "closed": req.closed,
            "reason": req.reason,
            "new_cause": req.new_cause,
            # Only a vendor incident's own row: a forged start names rows it cannot touch.
            "workflow_id": running_workflow_id(),
        }
        async with self._engine.begin() as conn:
            await conn.execute(_RECORD, params)

    @activity.defn(name="read_vendor_breaker")
    async def read_breaker(self, req: VendorRef) -> BreakerReading:
        """The vendor's breaker state for the tenant, and how long it stays open."""
        state, open_for_s = await self._breaker.state(breaker_key(req.tenant_id, req.vendor))
        probe_every_s = self._vendors.for_vendor(req.vendor).probe_every_s()
        return BreakerReading(state.value, open_for_s, probe_every_s)

    @activity.defn(name="vendor_page_targets")
    async def page_targets(self, req: VendorRef) -> PageTargets:
        """The first level of the tenant's policy (or the default), by target type only."""
        registration = await self._sender.tenant_registration(
            req.tenant_id, req.incident_id, running_workflow_id()
        )
        if not registration.policy.levels:
            return PageTargets("", "info")
        level = registration.policy.levels[0]
        return PageTargets(level.name, str(level.severity), [t.type for t in level.targets])
