"""Vendor-incident activities refuse what PostgreSQL does not back: a forged link opens no
vendor incident, and a forged vendor incident cannot rewrite another incident's row."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.incidents import activity_env
from vocabulary import IncidentStatus
from workflows.vendor_payloads import LinkRequest, LinkResult, VendorRecordRequest


def _activity(activities: Sequence[Callable[..., Any]], name: str) -> Callable[..., Any]:
    return next(a for a in activities if getattr(a, "__name__", "") == name)


async def _incident_row(settings: Settings, tenant: TenantCredentials) -> str:
    """A plain incident of the tenant at stripe, as IncidentWorkflow would have stored it."""
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        incident_id = await conn.fetchval(
            "INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, severity, title,"
            " source_workflow, signature, vendor, first_seen_at, last_seen_at, watermarks)"
            " VALUES (gen_random_uuid(), $1, $2, 'r1', 'waiting', 'high', 't', 'billing-sync',"
            " 'sig', 'stripe', now(), now(), '{}') RETURNING id",
            tenant.id,
            f"incident:{tenant.id}:{uuid.uuid4().hex}",
        )
    finally:
        await conn.close()
    return str(incident_id)


async def _row(settings: Settings, incident_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, parent_incident_id, closed_at FROM incidents WHERE id = $1::uuid",
            incident_id,
        )
    finally:
        await conn.close()
    assert row is not None
    return row


async def test_a_link_naming_another_vendor_or_tenant_opens_nothing(
    activities: Sequence[Callable[..., Any]], settings: Settings, tenant: TenantCredentials
) -> None:
    link = _activity(activities, "link")
    incident_id = await _incident_row(settings, tenant)
    env = activity_env(f"incident:{tenant.id}:x")
    for tenant_id, vendor in ((str(tenant.id), "acme"), (str(uuid.uuid4()), "stripe")):
        request = LinkRequest(tenant_id, vendor, incident_id, "wf", "billing-sync", "circuit open")
        assert await env.run(link, request) == LinkResult("", "")
    assert (await _row(settings, incident_id))["parent_incident_id"] is None


async def test_a_forged_vendor_incident_cannot_close_an_incident_row(
    activities: Sequence[Callable[..., Any]], settings: Settings, tenant: TenantCredentials
) -> None:
    record = _activity(activities, "record")
    incident_id = await _incident_row(settings, tenant)
    forged = VendorRecordRequest(
        str(tenant.id), incident_id, IncidentStatus.RESOLVED, 1, 0, "forged", closed=True
    )
    await activity_env(f"vendor:{tenant.id}:stripe").run(record, forged)
    row = await _row(settings, incident_id)
    assert (row["status"], row["closed_at"]) == ("waiting", None)
