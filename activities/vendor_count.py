"""The second trigger of vendor incidents: enough open incidents of one tenant name a vendor.

One query on `ix_incidents_open_by_vendor` (open incidents by tenant, vendor and creation
time) answers whether the tenant's vendor incident is open, and how many open incidents naming
the vendor, from how many workflows, were opened within the window — counting only those
opened after the tenant's last vendor incident for that vendor ended, so the incidents it held
and released cannot open the next one (docs/ARCHITECTURE.md, Vendor incidents).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from rules.policy import DegradedAfter

COUNT_QUERY = text("""
WITH last_parent AS (
    SELECT closed_at FROM incidents
    WHERE workflow_id = :workflow_id AND tenant_id = :tenant_id
    ORDER BY created_at DESC LIMIT 1
)
SELECT EXISTS (SELECT 1 FROM last_parent WHERE closed_at IS NULL) AS parent_open,
       count(*) AS incidents, count(DISTINCT source_workflow) AS workflows
FROM incidents
WHERE tenant_id = :tenant_id AND vendor = :vendor AND closed_at IS NULL
  AND created_at >= greatest(now() - make_interval(secs => :within_s),
                             coalesce((SELECT closed_at FROM last_parent), '-infinity'))
  AND workflow_id <> :workflow_id
""")


@dataclass(frozen=True)
class VendorCount:
    """What the count found: the vendor incident open, or the open incidents in the window."""

    parent_open: bool
    incidents: int
    workflows: int

    def cause(self, after: DegradedAfter) -> str:
        """Why the incident links ("" when it does not): an open vendor incident, or the count."""
        if self.parent_open:
            return "vendor incident open"
        if self.incidents >= after.incidents and self.workflows >= after.workflows:
            return f"{self.incidents} incidents within {after.within_s:g} s"
        return ""


async def count_vendor_incidents(
    conn: AsyncConnection, *, tenant_id: str, vendor: str, workflow_id: str, within_s: float
) -> VendorCount:
    """Count the tenant's open incidents naming `vendor` opened within `within_s` seconds."""
    row = (
        await conn.execute(
            COUNT_QUERY,
            {
                "tenant_id": uuid.UUID(tenant_id),
                "vendor": vendor,
                "workflow_id": workflow_id,
                "within_s": within_s,
            },
        )
    ).one()
    return VendorCount(bool(row.parent_open), int(row.incidents), int(row.workflows))
