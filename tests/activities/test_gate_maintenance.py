"""The safety gate under maintenance windows and expiring kill switches (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from activities.safety import SafetyGate
from models.db import create_engine
from rules.policy import load_policies
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import failure_event, register_workflow
from workflows.activity_payloads import GateRequest


@pytest.fixture
async def gate(settings: Settings) -> AsyncIterator[SafetyGate]:
    """A gate that re-asks a held incident after 5 s at most."""
    engine = create_engine(settings)
    redis = Redis.from_url(settings.redis_url)
    yield SafetyGate(
        engine=engine,
        redis=redis,
        policies=load_policies(),
        calls_per_hour=100,
        maintenance_recheck_s=5,
    )
    await redis.aclose()
    await engine.dispose()


def _request(tenant: TenantCredentials, incident_id: str = "i") -> GateRequest:
    return GateRequest(
        tenant_id=str(tenant.id),
        incident_id=incident_id,
        source_workflow="billing-sync",
        vendor="stripe",
        attempt=1,
        max_attempts=5,
    )


async def _window(http: httpx.AsyncClient, tenant: TenantCredentials, **fields: Any) -> str:
    body = {
        "starts_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "duration_s": 3,
        "mode": "hold",
        "reason": "db upgrade",
        **fields,
    }
    created = await http.post("/api/v1/maintenance-windows", json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_a_matching_window_holds_until_its_end_and_releases_after(
    gate: SafetyGate, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    await _window(http, tenant, matchers={"workflow": "billing-*", "vendor": "stripe"})
    await _window(http, tenant, matchers={"vendor": "sendgrid"}, duration_s=3600)
    held = await gate.check_gate(_request(tenant))
    assert held.verdict == "wait"
    assert held.reason.startswith("maintenance window db upgrade until ")
    assert 0.5 < held.wait_s <= 2 + 1  # the window's remaining 2 s, plus the first jitter
    await asyncio.sleep(2.2)
    assert (await gate.check_gate(_request(tenant))).verdict == "permit"


async def test_a_window_on_a_step_needs_the_incident_and_delete_ends_it(
    gate: SafetyGate, http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    await register_workflow(http, tenant)
    window_id = await _window(http, tenant, matchers={"step": "charge-*"}, duration_s=3600)
    assert (await gate.check_gate(_request(tenant))).verdict == "permit"  # no such incident
    incident_id = await _incident(settings, tenant, step="charge-card")
    held = await gate.check_gate(_request(tenant, incident_id))
    assert held.verdict == "wait" and held.wait_s <= 5 + 1  # re-asked within the recheck
    ended = await http.delete(f"/api/v1/maintenance-windows/{window_id}", headers=tenant.headers)
    assert ended.status_code == 200
    assert (await gate.check_gate(_request(tenant, incident_id))).verdict == "permit"


async def test_a_kill_switch_stops_nothing_once_it_expired(
    gate: SafetyGate, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    expires_at = datetime.now(UTC) + timedelta(seconds=1.5)
    switch = await http.post(
        "/api/v1/kill-switches",
        headers=tenant.headers,
        json={"workflow": "billing-sync", "reason": "INC-7", "expires_at": expires_at.isoformat()},
    )
    assert switch.status_code == 201, switch.text
    assert switch.json()["expires_at"] is not None
    assert (await gate.check_gate(_request(tenant))).kill
    first = await http.post("/api/v1/events", json=failure_event(), headers=tenant.headers)
    assert first.json()["remediation"] == "suppressed"
    await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 1.1)
    assert (await gate.check_gate(_request(tenant))).verdict == "permit"
    later = await http.post("/api/v1/events", json=failure_event(), headers=tenant.headers)
    assert later.json()["remediation"] == "normal"
    past = await http.post(
        "/api/v1/kill-switches",
        headers=tenant.headers,
        json={"workflow": "billing-sync", "reason": "x", "expires_at": "2020-01-01T00:00:00Z"},
    )
    assert past.status_code == 422 and "expires_at" in past.text


async def _incident(settings: Settings, tenant: TenantCredentials, step: str) -> str:
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        now = datetime.now(UTC)
        return str(
            await conn.fetchval(
                """INSERT INTO incidents (id, tenant_id, workflow_id, run_id, source_workflow,
                       step, signature, title, first_seen_at, last_seen_at)
                   VALUES (gen_random_uuid(), $1, $2, 'run', 'billing-sync', $3, 's', '', $4, $4)
                   RETURNING id""",
                tenant.id,
                f"incident:{tenant.id}:{uuid.uuid4().hex}",
                step,
                now,
            )
        )
    finally:
        await conn.close()
