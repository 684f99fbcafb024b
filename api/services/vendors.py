"""Vendors as operators see them: each one's live circuit state and settings, and overrides."""

from __future__ import annotations

import uuid
from typing import Literal

from redis.asyncio import Redis
from sqlalchemy import exists
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import NotFound
from models.event import Event
from models.incident import Incident
from models.schemas.safety import VendorOut
from rules.circuit_breaker import CircuitBreaker, breaker_key, breaker_prefix
from rules.policy import Policies
from vocabulary import BreakerState

CircuitAction = Literal["open", "close", "reset"]
FORCE: dict[CircuitAction, BreakerState] = {
    "open": BreakerState.FORCED_OPEN,
    "close": BreakerState.FORCED_CLOSED,
    "reset": BreakerState.CLOSED,
}


async def vendor_out(
    *, redis: Redis, policies: Policies, tenant_id: uuid.UUID, name: str
) -> VendorOut:
    """The vendor's breaker state for this tenant, beside its configured settings."""
    settings = policies.vendors.for_vendor(name)
    state, open_for = await CircuitBreaker(redis).state(breaker_key(str(tenant_id), name))
    breaker = settings.circuit_breaker
    return VendorOut(
        name=name,
        circuit_state=state,
        open_for_s=round(open_for, 3),
        failure_rate_threshold=breaker.failure_rate_threshold,
        window_size=breaker.window_size,
        minimum_calls=breaker.minimum_calls,
        open_duration_s=breaker.open_duration_s,
        half_open_probes=breaker.half_open_probes,
        rate_limit_per_s=settings.rate_limit_per_s,
        call_timeout_s=settings.call_timeout_s,
    )


async def list_vendors(
    *, redis: Redis, policies: Policies, tenant_id: uuid.UUID
) -> list[VendorOut]:
    """Every configured vendor and every one the tenant has breaker state for, by name."""
    names = set(policies.vendors.vendors)
    prefix = breaker_prefix(str(tenant_id))
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        names.add((key.decode() if isinstance(key, bytes) else str(key))[len(prefix) :])
    return [
        await vendor_out(redis=redis, policies=policies, tenant_id=tenant_id, name=name)
        for name in sorted(names)
    ]


async def require_known_vendor(
    *, session: AsyncSession, policies: Policies, tenant_id: uuid.UUID, name: str
) -> None:
    """404 unless the policy files, or the tenant's incidents or events, name the vendor."""
    # A typo must not create a breaker that then shows up, forced open, as a phantom vendor.
    if name in policies.vendors.vendors:
        return
    for model in (Incident, Event):  # incidents first: they have a (tenant, vendor) index
        named = exists().where(col(model.tenant_id) == tenant_id, col(model.vendor) == name)
        if (await session.exec(select(named))).first():
            return
    raise NotFound(
        f"vendor {name!r} is unknown: not in the policy files, and no event or incident names it"
    )


async def force_circuit(
    *, redis: Redis, policies: Policies, tenant_id: uuid.UUID, name: str, action: CircuitAction
) -> VendorOut:
    """Force the tenant's circuit for the vendor open or closed, or reset it; return its state."""
    await CircuitBreaker(redis).force(breaker_key(str(tenant_id), name), FORCE[action])
    return await vendor_out(redis=redis, policies=policies, tenant_id=tenant_id, name=name)
