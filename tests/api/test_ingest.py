"""`POST /events`: idempotency, validation, registry checks and the outbox, against real servers."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from rules.policy import load_policies
from rules.signature import compute_signature
from settings import Settings
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import failure_event, register_workflow


async def test_failure_is_accepted_with_its_incident_key(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    response = await http.post("/api/v1/events", json=failure_event(), headers=tenant.headers)
    assert response.status_code == 202, response.text
    body = response.json()
    signature = compute_signature(
        load_policies().error_codes,
        workflow="billing-sync",
        step="charge-card",
        error_code="VENDOR_TIMEOUT",
        error_message=None,
        vendor="stripe",
    )
    assert body["status"] == "accepted"
    assert body["remediation"] == "normal"
    assert body["incident_key"] == f"incident:{tenant.id}:{signature}"


async def test_same_key_same_body_replays_and_other_body_conflicts(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    event = failure_event()
    first = await http.post("/api/v1/events", json=event, headers=tenant.headers)
    again = await http.post("/api/v1/events", json=event, headers=tenant.headers)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["event_id"] == first.json()["event_id"]
    assert again.json()["status"] == "duplicate"
    changed = await http.post(
        "/api/v1/events", headers=tenant.headers, json={**event, "payload": {"invoice": "other"}}
    )
    assert changed.status_code == 409
    assert changed.headers["content-type"] == "application/problem+json"
    assert changed.json()["event_id"] == first.json()["event_id"]


async def test_idempotency_key_header_stands_in_for_the_field(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    event = failure_event()
    key = event.pop("idempotency_key")
    headers = {**tenant.headers, "Idempotency-Key": key}
    first = await http.post("/api/v1/events", json=event, headers=headers)
    again = await http.post(
        "/api/v1/events", json={**event, "idempotency_key": key}, headers=tenant.headers
    )
    assert first.status_code == 202
    assert again.status_code == 200
    mismatch = await http.post(
        "/api/v1/events", json={**event, "idempotency_key": "other"}, headers=headers
    )
    assert mismatch.status_code == 422
    missing = await http.post("/api/v1/events", json=event, headers=tenant.headers)
    assert missing.status_code == 422
    assert "idempotency_key" in missing.json()["detail"]


async def test_unknown_and_inactive_workflows_are_404(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    unknown = await http.post("/api/v1/events", json=failure_event("nope"), headers=tenant.headers)
    assert unknown.status_code == 404
    await register_workflow(http, tenant, name="paused-flow", active=False)
    inactive = await http.post(
        "/api/v1/events", json=failure_event("paused-flow"), headers=tenant.headers
    )
    assert inactive.status_code == 404


async def test_concurrent_duplicates_store_each_key_once(
    http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    await register_workflow(http, tenant)
    events = [failure_event() for _ in range(1000)]

    async def client() -> list[str]:
        ids = []
        for event in events:
            response = await http.post("/api/v1/events", json=event, headers=tenant.headers)
            assert response.status_code in (200, 202), response.text
            ids.append(response.json()["event_id"])
        return ids

    results = await asyncio.gather(*(client() for _ in range(8)))
    assert all(ids == results[0] for ids in results)
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant.id)
    finally:
        await conn.close()
    assert count == 1000
    assert len(set(results[0])) == 1000


async def test_deactivated_tenant_gets_403(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    off = await http.patch(f"/api/v1/tenants/{tenant.id}", json={"active": False}, headers=admin)
    assert off.status_code == 200
    response = await http.post("/api/v1/events", json=failure_event(), headers=tenant.headers)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_rate_limit_is_per_tenant(http: httpx.AsyncClient, tenant: TenantCredentials) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    other = await http.post(
        "/api/v1/tenants", json={"name": f"other-{uuid.uuid4().hex[:8]}"}, headers=admin
    )
    other_headers = {"Authorization": f"Bearer {other.json()['api_key']}"}
    await http.patch(f"/api/v1/tenants/{tenant.id}", json={"ingest_rate_per_s": 5}, headers=admin)
    for creds in (tenant.headers, other_headers):
        response = await http.post(
            "/api/v1/workflows",
            headers=creds,
            json={"name": "billing-sync", "callback_url": "http://127.0.0.1:9/cb"},
        )
        assert response.status_code == 201
    statuses = [
        (await http.post("/api/v1/events", json=failure_event(), headers=tenant.headers))
        for _ in range(8)
    ]
    codes = [r.status_code for r in statuses]
    assert codes[:5] == [202] * 5
    assert 429 in codes[5:]
    limited = next(r for r in statuses if r.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["content-type"] == "application/problem+json"
    unaffected = await http.post("/api/v1/events", json=failure_event(), headers=other_headers)
    assert unaffected.status_code == 202
