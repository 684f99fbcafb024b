"""Operator API over real incidents: reads, filters, timeline, controls, tenant isolation."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from api.app import create_app
from devstack.http_target import CallbackServer, Reply
from devstack.process import free_port
from settings import Settings
from tests.api.incident_views import wait_for_incident
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, failure
from workflows.incident_workflow import IncidentWorkflow

SLOW = {
    "max_attempts": 5,
    "initial_interval_s": 3600,
    "multiplier": 1,
    "max_interval_s": 3600,
    "jitter": 0,
}


async def test_read_filter_control_and_timeline_of_a_live_incident(
    live: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW)
        handle = await live.start()
        incident = await wait_for_incident(http, tenant, handle.id, "waiting")
        path = f"/api/v1/incidents/{incident['id']}"
        detail = (await http.get(path, headers=tenant.headers)).json()
        by_workflow_id = await http.get(f"/api/v1/incidents/{handle.id}", headers=tenant.headers)
        assert by_workflow_id.status_code == 200 and by_workflow_id.json()["id"] == incident["id"]
        assert detail["live_state_available"] and detail["live"]["status"] == "waiting"
        assert detail["web_ui_url"].endswith(f"/namespaces/default/workflows/{handle.id}")
        for query, hit in (
            ({"status": "waiting"}, True),
            ({"status": "resolved"}, False),
            ({"workflow": "billing-sync"}, True),
            ({"vendor": "nope"}, False),
            ({"severity": "high"}, True),
            ({"error_code": "VENDOR_TIMEOUT"}, True),
        ):
            items = (
                await http.get("/api/v1/incidents", params=query, headers=tenant.headers)
            ).json()["items"]
            assert (incident["id"] in [i["id"] for i in items]) is hit, query

        assert (await http.post(f"{path}/pause", headers=tenant.headers)).status_code == 202
        await wait_for_incident(http, tenant, handle.id, "paused")
        assert (await http.get(path, headers=tenant.headers)).json()["live"]["paused"] is True
        assert (await http.post(f"{path}/resume", headers=tenant.headers)).status_code == 202
        await wait_for_incident(http, tenant, handle.id, "waiting")
        killed = await http.post(
            f"{path}/kill", headers=tenant.headers, json={"reason": "operator test"}
        )
        assert killed.status_code == 202
        result = await asyncio.wait_for(handle.result(), 30)
        assert (result.status, result.reason) == ("killed", "operator test")
        await wait_for_incident(http, tenant, handle.id, "killed")
        again = await http.post(f"{path}/kill", headers=tenant.headers)
        assert again.status_code == 409
        assert again.headers["content-type"] == "application/problem+json"
        closed = (await http.get(path, headers=tenant.headers)).json()
        assert closed["live"] is None and closed["live_state_available"] is True
    assert len(server.calls) == 1

    timeline = (await http.get(f"{path}/timeline", headers=tenant.headers)).json()
    kinds = {entry["kind"] for entry in timeline["entries"]}
    assert kinds == {"events", "decision", "action", "state"}
    assert timeline["entries"] == sorted(timeline["entries"], key=lambda e: e["at"])
    assert all(entry["cause"] for entry in timeline["entries"])
    states = [e["summary"] for e in timeline["entries"] if e["kind"] == "state"]
    assert "status → paused" in states and states[-1] == "status → killed"
    actions = (
        await http.get(
            "/api/v1/actions", params={"incident_id": incident["id"]}, headers=tenant.headers
        )
    ).json()["items"]
    assert [a["status"] for a in actions] == ["failed"]
    one = await http.get(f"/api/v1/actions/{actions[0]['id']}", headers=tenant.headers)
    assert one.json()["idempotency_key"] == f"{incident['id']}:1"
    decisions = (
        await http.get(
            "/api/v1/decisions", params={"incident_id": incident["id"]}, headers=tenant.headers
        )
    ).json()["items"]
    assert {d["ai_model"] for d in decisions} >= {"mock-detector-v1", "mock-rca-v1", "rules-v1"}


async def _other_tenant(http: httpx.AsyncClient) -> TenantCredentials:
    created = (
        await http.post(
            "/api/v1/tenants",
            json={"name": f"b-{uuid.uuid4().hex[:8]}"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    ).json()
    return TenantCredentials(uuid.UUID(created["id"]), created["name"], created["api_key"])


async def test_isolation_matrix_foreign_ids_are_404_and_lists_stay_private(
    live: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW)
        handle = await live.start()
        incident = await wait_for_incident(http, tenant, handle.id, "waiting")
        action = (await http.get("/api/v1/actions", headers=tenant.headers)).json()["items"][0]
        event = (await http.get("/api/v1/events", headers=tenant.headers)).json()
        other = await _other_tenant(http)
        iid = incident["id"]
        by_id = [
            ("GET", f"/api/v1/incidents/{iid}"),
            ("GET", f"/api/v1/incidents/{iid}/timeline"),
            ("GET", f"/api/v1/actions/{action['id']}"),
        ]
        by_id += [
            ("POST", f"/api/v1/incidents/{ref}/{c}")
            for ref in (iid, handle.id)
            for c in ("pause", "resume", "kill", "resolve", "acknowledge", "approve", "reject")
        ]
        by_id += [
            ("GET", f"/api/v1/incidents/{handle.id}"),
            ("GET", f"/api/v1/incidents/{handle.id}/timeline"),
        ]
        switch = await http.post(
            "/api/v1/kill-switches",
            headers=tenant.headers,
            json={"workflow": "billing-sync", "vendor": "never-used", "reason": "matrix"},
        )
        by_id += [
            ("DELETE", f"/api/v1/kill-switches/{switch.json()['id']}"),
            ("GET", "/api/v1/workflows/billing-sync"),
            ("PATCH", "/api/v1/workflows/billing-sync"),
        ]
        if event["items"]:
            by_id.append(("GET", f"/api/v1/events/{event['items'][0]['id']}"))
        for method, path in by_id:
            body = {"active": False} if method == "PATCH" else None
            response = await http.request(method, path, headers=other.headers, json=body)
            assert response.status_code == 404, (method, path, response.status_code)
        for path in (
            "/api/v1/incidents",
            "/api/v1/actions",
            "/api/v1/decisions",
            "/api/v1/events",
            "/api/v1/kill-switches",
        ):
            body = (await http.get(path, headers=other.headers)).json()
            items = body["items"] if isinstance(body, dict) else body
            assert items == [], path
        assert (await handle.query(IncidentWorkflow.status)).status == "waiting"  # untouched
        await handle.signal(IncidentWorkflow.kill)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/incidents",
        "/api/v1/actions",
        "/api/v1/decisions",
        "/api/v1/vendors",
        "/api/v1/kill-switches",
    ],
)
async def test_ingest_keys_cannot_read_or_control(
    http: httpx.AsyncClient, tenant: TenantCredentials, path: str
) -> None:
    created = await http.post(
        f"/api/v1/tenants/{tenant.id}/api-keys",
        json={"scope": "ingest"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    ingest = {"Authorization": f"Bearer {created.json()['api_key']}"}
    assert (await http.get(path, headers=ingest)).status_code == 403
    control = await http.post(f"/api/v1/incidents/{uuid.uuid4()}/kill", headers=ingest)
    assert control.status_code == 403


async def test_temporal_down_gives_the_stored_view_not_a_5xx(
    settings: Settings,
    live: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW)
        handle = await live.start()
        incident = await wait_for_incident(http, tenant, handle.id, "waiting")
        dead = create_app(
            settings.model_copy(
                update={"temporal_address": f"127.0.0.1:{free_port()}", "dispatcher_enabled": False}
            )
        )
        async with (
            dead.router.lifespan_context(dead),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=dead), base_url="http://t"
            ) as client,
        ):
            detail = await client.get(f"/api/v1/incidents/{incident['id']}", headers=tenant.headers)
            control = await client.post(
                f"/api/v1/incidents/{incident['id']}/pause", headers=tenant.headers
            )
        await handle.signal(IncidentWorkflow.kill)
    assert detail.status_code == 200
    body = detail.json()
    assert body["live"] is None and body["live_state_available"] is False
    assert body["live_state_error"].startswith("live state unavailable")
    assert body["status"] == "waiting"
    assert control.status_code == 503
    assert control.headers["content-type"] == "application/problem+json"


async def test_an_unknown_error_code_stays_visible_and_is_explained(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW)
        drift = failure(code="LEDGER_DRIFT_42", error_message="books do not balance")
        handle = await live.start(code="LEDGER_DRIFT_42", events=[drift])
        incident = await wait_for_incident(http, tenant, handle.id, "waiting")
        decisions = (
            await http.get(
                "/api/v1/decisions", params={"incident_id": incident["id"]}, headers=tenant.headers
            )
        ).json()["items"]
        await handle.signal(IncidentWorkflow.kill)
    assert incident["error_code"] == "LEDGER_DRIFT_42"
    [classified] = [d for d in decisions if d["decision_type"] == "classification"]
    assert classified["reasoning"].startswith(
        "Neither the catalogue nor a message pattern knows 'LEDGER_DRIFT_42': handled as"
    )
    assert "nothing matched" not in classified["reasoning"]
