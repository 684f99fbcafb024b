"""How vendor incidents and their children call the vendor-incident activities (all local).

Deterministic workflow code: it runs inside the workflow sandbox.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.activity_calls import run_local
from workflows.vendor_payloads import (
    BreakerReading,
    LinkRequest,
    LinkResult,
    PageTargets,
    VendorRecordRequest,
    VendorRef,
)

with workflow.unsafe.imports_passed_through():
    from activities.vendor_incidents import VendorIncidentActivities

# Starting the vendor incident is a round trip to the server: more than a database write.
LINK_TIMEOUT = timedelta(seconds=20)


async def link(req: LinkRequest) -> LinkResult:
    """Link this incident to its tenant's vendor incident (opened if none is)."""
    return await run_local(
        VendorIncidentActivities.link,
        req,
        f"link to vendor incident: {req.vendor} ({req.cause})",
        timeout=LINK_TIMEOUT,
    )


async def link_by_count(req: LinkRequest) -> LinkResult:
    """Link this incident when its vendor incident is open or enough incidents name the vendor
    (an empty result otherwise)."""
    return await run_local(
        VendorIncidentActivities.link_by_count,
        req,
        f"count incidents at {req.vendor}",
        timeout=LINK_TIMEOUT,
    )


async def record(req: VendorRecordRequest) -> None:
    """Write the vendor incident's row (and a transition row)."""
    await run_local(VendorIncidentActivities.record, req, f"record vendor incident: {req.status}")


async def read_breaker(ref: VendorRef) -> BreakerReading:
    """Read the vendor's breaker."""
    return await run_local(VendorIncidentActivities.read_breaker, ref, f"breaker {ref.vendor}")


async def page_targets(ref: VendorRef) -> PageTargets:
    """The first level of the tenant's escalation policy."""
    return await run_local(
        VendorIncidentActivities.page_targets, ref, "tenant's escalation level 1"
    )
