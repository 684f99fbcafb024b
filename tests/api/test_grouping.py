"""Grouping you can read: an incident's signature explained, and each event entry says why."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from rules.policy import load_policies
from rules.signature import compute_signature
from settings import Settings
from tests.conftest import TenantCredentials

FIELDS = {"workflow": "billing-sync", "step": "charge-card", "vendor": "stripe"}


async def _seed(settings: Settings, tenant: TenantCredentials, codes: list[str]) -> uuid.UUID:
    """An incident whose failures carry `codes`, each VENDOR_TIMEOUT or an alias of it."""
    signature = compute_signature(
        load_policies().error_codes, error_code="VENDOR_TIMEOUT", error_message=None, **FIELDS
    )
    key = f"incident:{tenant.id}:{signature}"
    start = datetime.now(UTC) - timedelta(minutes=5)
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        incident_id: uuid.UUID = await conn.fetchval(
            """INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, source_workflow,
                   step, vendor, error_code, signature, title, event_count, first_seen_at,
                   last_seen_at, closed_at)
               VALUES (gen_random_uuid(), $1, $2, 'run', 'resolved', 'billing-sync',
                   'charge-card', 'stripe', 'VENDOR_TIMEOUT', $3, '', $4, $5, $6, $6)
               RETURNING id""",
            tenant.id,
            key,
            signature,
            len(codes),
            start,
            start + timedelta(seconds=len(codes)),
        )
        await conn.executemany(
            """INSERT INTO events (id, tenant_id, idempotency_key, body_sha256, workflow, step,
                   vendor, event_type, error_code, error_message, signature, incident_key,
                   correlation_id, occurred_at)
               VALUES (gen_random_uuid(), $1, gen_random_uuid()::text, 'x', 'billing-sync',
                   'charge-card', 'stripe', 'step.failed', $2, $3, $4, $5, 'c', $6)""",
            [
                (
                    tenant.id,
                    code,
                    f"attempt {n} timed out",
                    signature,
                    key,
                    start + timedelta(seconds=n),
                )
                for n, code in enumerate(codes)
            ],
        )
    finally:
        await conn.close()
    return incident_id


async def test_an_incident_explains_its_signature_and_its_timeline_why_events_joined(
    http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    incident_id = await _seed(settings, tenant, ["ETIMEDOUT", "VENDOR_TIMEOUT", "etimedout"])
    detail = await http.get(f"/api/v1/incidents/{incident_id}", headers=tenant.headers)
    assert detail.status_code == 200, detail.text
    grouping = detail.json()["grouping"]
    assert grouping["fields"] == {**FIELDS, "error": "VENDOR_TIMEOUT"}
    assert grouping["rule"] == "error_code" and grouping["matches_incident"] is True
    assert "'ETIMEDOUT' is an alias of it" in grouping["explanation"]

    story = await http.get(f"/api/v1/incidents/{incident_id}/timeline", headers=tenant.headers)
    buckets = [e for e in story.json()["entries"] if e["kind"] == "events"]
    assert sum(bucket["details"]["count"] for bucket in buckets) == 3
    for bucket in buckets:  # every event entry says which signature fields its events share
        assert bucket["cause"] == (
            "same signature (workflow=billing-sync, step=charge-card, error=VENDOR_TIMEOUT, "
            "vendor=stripe)"
        )
        assert bucket["details"]["grouping"] == {
            "rule": "error_code",
            **FIELDS,
            "error": "VENDOR_TIMEOUT",
        }


async def test_an_incident_without_stored_failures_has_no_grouping(
    http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    incident_id = await _seed(settings, tenant, [])
    detail = await http.get(f"/api/v1/incidents/{incident_id}", headers=tenant.headers)
    assert detail.status_code == 200 and detail.json()["grouping"] is None
