"""Incident timelines: bounded whatever the event count, and each change says what caused it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.api.incident_views import timeline, wait_for_incident
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, keep_history
from workflows.incident_workflow import IncidentWorkflow

SLOW = {
    "max_attempts": 5,
    "initial_interval_s": 3600,
    "multiplier": 1,
    "max_interval_s": 3600,
    "jitter": 0,
}


async def _seed_incident(settings: Settings, tenant: TenantCredentials, events: int) -> uuid.UUID:
    start = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    key = f"incident:{tenant.id}:{uuid.uuid4().hex}"
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        incident_id = await conn.fetchval(
            """INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, source_workflow,
                   signature, title, event_count, first_seen_at, last_seen_at, closed_at)
               VALUES (gen_random_uuid(), $1, $2, 'run', 'resolved', 'billing-sync', 's', '', $3,
                   $4, $5, $5) RETURNING id""",
            tenant.id,
            key,
            events,
            start,
            start + timedelta(seconds=events - 1),
        )
        await conn.copy_records_to_table(
            "events",
            columns=[
                "id",
                "tenant_id",
                "idempotency_key",
                "body_sha256",
                "workflow",
                "event_type",
                "error_code",
                "signature",
                "incident_key",
                "correlation_id",
                "occurred_at",
            ],
            records=[
                (
                    uuid.uuid4(),
                    tenant.id,
                    f"k{n}",
                    "h",
                    "billing-sync",
                    "step.failed",
                    "VENDOR_TIMEOUT",
                    "s",
                    key,
                    "c",
                    start + timedelta(seconds=n),
                )
                for n in range(events)
            ],
        )
    finally:
        await conn.close()
    return uuid.UUID(str(incident_id))


async def test_a_timeline_of_10000_events_is_one_bounded_response(
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    incident_id = await _seed_incident(settings, tenant, 10_000)
    response = await http.get(f"/api/v1/incidents/{incident_id}/timeline", headers=tenant.headers)
    assert response.status_code == 200
    timeline = response.json()
    buckets = [e for e in timeline["entries"] if e["kind"] == "events"]
    assert len(buckets) <= 48
    assert sum(b["details"]["count"] for b in buckets) == 10_000
    assert all(1 <= len(b["details"]["samples"]) <= 2 for b in buckets)
    assert len(response.content) < 100_000


async def test_an_incident_held_by_an_open_circuit_says_so_in_its_timeline(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    circuit = "/api/v1/vendors/stripe/circuit"
    async with CallbackServer([Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW)
        forced = await http.post(f"{circuit}/open", headers=tenant.headers)
        assert forced.status_code == 200 and forced.json()["circuit_state"] == "forced_open"
        handle = await live.start(vendor="stripe")
        incident = await wait_for_incident(http, tenant, handle.id, "waiting")
        entries = await timeline(http, tenant, incident["id"])
        await handle.signal(IncidentWorkflow.kill)
        await http.post(f"{circuit}/reset", headers=tenant.headers)
    assert server.calls == []  # held at the gate: the callback was never called
    waits = [e for e in entries if e["kind"] == "state" and e["summary"] == "status → waiting"]
    assert waits, entries
    cause = waits[0]["cause"]
    assert cause.startswith("waiting:") and "stripe" in cause and "circuit" in cause, cause


async def _waits(
    http: httpx.AsyncClient, tenant: TenantCredentials, incident_id: str, count: int
) -> list[dict[str, Any]]:
    for _ in range(150):
        entries = await timeline(http, tenant, incident_id)
        waits = [e for e in entries if e["kind"] == "state" and e["summary"] == "status → waiting"]
        if len(waits) >= count:
            return waits
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} waiting rows: {entries}")


async def test_a_gate_wait_after_a_backoff_gets_its_own_timeline_row(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    circuit = "/api/v1/vendors/stripe/circuit"
    quick = SLOW | {"initial_interval_s": 2, "max_interval_s": 2}
    async with CallbackServer([Reply(503), Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=quick)
        handle = await live.start(vendor="stripe")
        incident = await wait_for_incident(http, tenant, handle.id, "waiting")  # the backoff
        await _waits(http, tenant, incident["id"], 1)
        forced = await http.post(f"{circuit}/open", headers=tenant.headers)
        assert forced.status_code == 200
        try:
            waits = await _waits(http, tenant, incident["id"], 2)
        finally:
            await handle.signal(IncidentWorkflow.kill)
            await http.post(f"{circuit}/reset", headers=tenant.headers)
        await handle.result()
        await keep_history(handle, "gate_wait_after_backoff")
    assert len(server.calls) == 1  # the retry waited at the gate and was never sent
    assert "backoff" in waits[0]["cause"] or "retry" in waits[0]["cause"], waits[0]
    assert "stripe" in waits[1]["cause"] and "circuit" in waits[1]["cause"], waits[1]


async def _key_id(http: httpx.AsyncClient, tenant: TenantCredentials) -> str:
    keys = await http.get(
        f"/api/v1/tenants/{tenant.id}/api-keys",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    [key] = [k for k in keys.json() if tenant.api_key.startswith(k["display_prefix"])]
    return str(key["id"])


async def _next_change(
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    incident_id: str,
    status: str,
    *,
    after: dict[str, object] | None = None,
) -> dict[str, object]:
    """The timeline's first change to `status` after the entry `after`, once it is recorded."""
    for _ in range(100):
        entries = await timeline(http, tenant, incident_id)
        start = entries.index(after) + 1 if after in entries else 0
        changes = [
            e
            for e in entries[start:]
            if e["kind"] == "state" and e["summary"] == f"status → {status}"
        ]
        if changes:
            return changes[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no change to {status} in the timeline of {incident_id}")


async def test_pause_and_resume_name_the_key_and_keep_a_typed_name_as_a_note(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW)
        handle = await live.start()
        incident = await wait_for_incident(http, tenant, handle.id, "waiting")
        path = f"/api/v1/incidents/{incident['id']}"
        body = {"by": "alice", "reason": "vendor maintenance"}
        paused = await http.post(f"{path}/pause", headers=tenant.headers, json=body)
        assert paused.status_code == 202 and paused.json()["signal"] == "pause"
        by_alice = await _next_change(http, tenant, incident["id"], "paused")
        resumed = await http.post(f"{path}/resume", headers=tenant.headers)
        assert resumed.status_code == 202
        by_key = await _next_change(http, tenant, incident["id"], "waiting", after=by_alice)
        await handle.signal(IncidentWorkflow.kill)
    actor = f"api-key:{await _key_id(http, tenant)}"
    # The credential names the operator; the typed-in `by` is only a note in the audit row.
    assert actor in str(by_alice["cause"]) and "vendor maintenance" in str(by_alice["cause"])
    assert "alice" not in str(by_alice["cause"])
    assert actor in str(by_key["cause"]), by_key
    target = {"target": f"incident:{incident['id']}"}
    audit = await http.get("/api/v1/operator-actions", headers=tenant.headers, params=target)
    assert [(row["action"], row["actor"], row["note"]) for row in audit.json()] == [
        ("resume", actor, None),
        ("pause", actor, "alice"),
    ]
