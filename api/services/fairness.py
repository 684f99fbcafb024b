"""Per-tenant fairness: how many new incidents a tenant may open right now.

A tenant at its cap of open incidents, or of incidents opened in the last minute, keeps every
event (stored, answered `"remediation": "deferred"`), but its new incidents wait in the outbox
until it is back under the cap; events for incidents already open always flow. One tenant's
flood therefore cannot fill the worker with incidents while another tenant's wait.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

_LOADS = """
SELECT t.id AS tenant_id,
       coalesce(t.max_open_incidents, $2) AS max_open,
       coalesce(t.max_new_incidents_per_minute, $3) AS max_per_minute,
       (SELECT count(*) FROM incidents i
        WHERE i.tenant_id = t.id AND i.closed_at IS NULL) AS open,
       (SELECT count(*) FROM incidents i
        WHERE i.tenant_id = t.id AND i.created_at > now() - interval '1 minute') AS recent
FROM tenants t WHERE t.id = ANY($1::uuid[])
"""
_OPEN_KEYS = """
SELECT DISTINCT workflow_id FROM incidents
WHERE workflow_id = ANY($1::text[]) AND closed_at IS NULL
"""


@dataclass(frozen=True)
class Caps:
    """The global caps (settings); a tenant's own values override them."""

    max_open_incidents: int
    max_new_incidents_per_minute: int


# The settings' defaults, for a dispatcher or intake built without settings (tests, tools).
DEFAULT_CAPS = Caps(max_open_incidents=1000, max_new_incidents_per_minute=600)


@dataclass(frozen=True)
class TenantLoad:
    """A tenant's incidents now, against its caps."""

    open_incidents: int
    opened_last_minute: int
    max_open: int
    max_per_minute: int

    @property
    def room(self) -> int:
        """How many more incidents the tenant may open now."""
        return max(
            0,
            min(
                self.max_open - self.open_incidents,
                self.max_per_minute - self.opened_last_minute,
            ),
        )


async def tenant_loads(
    conn: asyncpg.Connection, tenant_ids: set[uuid.UUID], caps: Caps
) -> dict[uuid.UUID, TenantLoad]:
    """Read the load of each tenant in one round trip."""
    rows = await conn.fetch(
        _LOADS, list(tenant_ids), caps.max_open_incidents, caps.max_new_incidents_per_minute
    )
    return {
        row["tenant_id"]: TenantLoad(
            row["open"], row["recent"], row["max_open"], row["max_per_minute"]
        )
        for row in rows
    }


async def open_keys(conn: asyncpg.Connection, keys: list[str]) -> set[str]:
    """The incident keys among `keys` whose incident is open now."""
    if not keys:
        return set()
    return {row["workflow_id"] for row in await conn.fetch(_OPEN_KEYS, keys)}


def admit(new_keys: list[tuple[uuid.UUID, str]], loads: dict[uuid.UUID, TenantLoad]) -> set[str]:
    """Of the new incidents (tenant, key) in arrival order, the keys that may open now."""
    room = {tenant: load.room for tenant, load in loads.items()}
    admitted: set[str] = set()
    for tenant, key in new_keys:
        if key in admitted:
            continue
        if room.get(tenant, 0) > 0:
            room[tenant] -= 1
            admitted.add(key)
    return admitted
