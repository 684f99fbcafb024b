"""The count behind vendor incidents opened by count, on PostgreSQL: only open incidents of the
tenant naming the vendor, opened within the window and after its last vendor incident ended."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from activities.vendor_count import VendorCount, count_vendor_incidents
from rules.policy import DegradedAfter
from settings import Settings
from tests.conftest import TenantCredentials

AFTER = DegradedAfter(incidents=3, workflows=2, within_s=60)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.async_database_url)
    yield engine
    await engine.dispose()


async def _insert(
    settings: Settings,
    tenant: TenantCredentials,
    workflow: str,
    *,
    vendor: str = "acme",
    age_s: float = 0,
    closed: bool = False,
    workflow_id: str = "",
) -> None:
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        await conn.execute(
            "INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, severity, title,"
            " source_workflow, signature, vendor, first_seen_at, last_seen_at, watermarks,"
            " created_at, closed_at)"
            " VALUES (gen_random_uuid(), $1, $2, gen_random_uuid()::text, 'waiting', 'high', 't',"
            " $3, 'sig', $4, now(), now(), '{}', now() - make_interval(secs => $5),"
            " CASE WHEN $6 THEN now() END)",
            tenant.id,
            workflow_id or f"incident:{tenant.id}:{uuid.uuid4().hex}",
            workflow,
            vendor,
            age_s,
            closed,
        )
    finally:
        await conn.close()


async def _count(engine: AsyncEngine, tenant: TenantCredentials) -> VendorCount:
    async with engine.connect() as conn:
        return await count_vendor_incidents(
            conn,
            tenant_id=str(tenant.id),
            vendor="acme",
            workflow_id=f"vendor:{tenant.id}:acme",
            within_s=AFTER.within_s,
        )


async def test_open_incidents_of_two_workflows_within_the_window_make_the_vendor_degraded(
    engine: AsyncEngine, settings: Settings, tenant: TenantCredentials
) -> None:
    for workflow in ("billing", "billing"):
        await _insert(settings, tenant, workflow)
    await _insert(settings, tenant, "invoice", vendor="other")  # another vendor
    await _insert(settings, tenant, "invoice", age_s=120)  # opened before the window
    await _insert(settings, tenant, "invoice", closed=True)  # already closed
    found = await _count(engine, tenant)
    assert found == VendorCount(parent_open=False, incidents=2, workflows=1)
    assert found.cause(AFTER) == ""
    await _insert(settings, tenant, "billing")
    assert (await _count(engine, tenant)).cause(AFTER) == ""  # three, but of one workflow
    await _insert(settings, tenant, "invoice")
    assert (await _count(engine, tenant)).cause(AFTER) == "4 incidents within 60 s"


async def test_an_open_vendor_incident_links_and_an_ended_one_resets_the_count(
    engine: AsyncEngine, settings: Settings, tenant: TenantCredentials
) -> None:
    for workflow in ("billing", "invoice", "billing"):
        await _insert(settings, tenant, workflow, age_s=5)
    parent = f"vendor:{tenant.id}:acme"
    await _insert(settings, tenant, "vendor:acme", workflow_id=parent)
    found = await _count(engine, tenant)
    # Its own row (it names the vendor too) is not counted.
    assert found == VendorCount(parent_open=True, incidents=3, workflows=2)
    assert found.cause(AFTER) == "vendor incident open"
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        await conn.execute("UPDATE incidents SET closed_at = now() WHERE workflow_id = $1", parent)
    finally:
        await conn.close()
    # The incidents it held were opened before it ended: they cannot open the next one.
    assert await _count(engine, tenant) == VendorCount(False, 0, 0)
    await _insert(settings, tenant, "billing")
    assert await _count(engine, tenant) == VendorCount(False, 1, 1)
