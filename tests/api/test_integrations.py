"""PagerDuty, Alertmanager and CloudEvents intakes with payloads from their documentation."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.service import RPCError

from api.app import create_app
from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import register_workflow
from worker import activity_set, build_worker

# From PagerDuty's Events API v2 documentation (routing_key replaced per test).
PD_TRIGGER: dict[str, Any] = {
    "routing_key": "e93facc04764012d7bfb002500d5d1a6",
    "event_action": "trigger",
    "dedup_key": "srv01/mysql",
    "payload": {
        "summary": "DISK at 99% on machine prod-datapipe03.example.com",
        "source": "prod-datapipe03.example.com",
        "severity": "critical",
        "timestamp": "2015-07-17T08:42:58.315+0000",
        "component": "mysql",
        "group": "prod-datapipe",
        "class": "disk",
        "custom_details": {"free space": "1%", "ping time": "1500ms", "load avg": 0.75},
    },
    "client": "Sample Monitoring Service",
    "client_url": "https://monitoring.service.com",
    "links": [{"href": "http://pagerduty.example.com", "text": "An example link."}],
}
# From Alertmanager's webhook documentation (version 4).
AM_FIRING: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}/{severity="critical"}:{alertname="ProbeFailure"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "sms",
    "groupLabels": {"alertname": "ProbeFailure"},
    "commonLabels": {"alertname": "ProbeFailure", "severity": "critical", "job": "http_checks"},
    "commonAnnotations": {"summary": "BlackBox Probe Failure: https://server.example.org"},
    "externalURL": "http://prometheus.example.org:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "ProbeFailure",
                "instance": "https://server.example.org",
                "severity": "critical",
            },
            "annotations": {"summary": "BlackBox Probe Failure: https://server.example.org"},
            "startsAt": "2023-02-06T13:08:45.828Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=probe_success",
            "fingerprint": "1a30ba71cca2921f",
        }
    ],
}


def _pd(tenant: TenantCredentials, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(PD_TRIGGER)
    body["routing_key"] = tenant.api_key
    body.update(changes)
    return body


async def _events(http: httpx.AsyncClient, tenant: TenantCredentials) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await http.get("/api/v1/events", headers=tenant.headers)).json()[
        "items"
    ]
    return items


async def test_pagerduty_trigger_is_accepted_in_pagerduty_shape(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant, name="monitoring")
    url = "/api/v1/integrations/pagerduty/enqueue?workflow=monitoring"
    first = await http.post(url, json=_pd(tenant))
    second = await http.post(url, json=_pd(tenant))
    assert first.status_code == second.status_code == 202
    assert first.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "srv01/mysql",
    }
    events = await _events(http, tenant)
    assert len(events) == 2 and events[0]["incident_key"] == events[1]["incident_key"]
    assert events[0]["step"] == "srv01/mysql" and events[0]["error"]["code"] == "ALERT"
    assert "routing_key" not in str(events[0]["payload"])
    generated = await http.post(url, json=_pd(tenant, dedup_key=None))
    assert uuid.UUID(generated.json()["dedup_key"])


async def test_pagerduty_malformed_events_get_pagerdutys_error_shape(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant, name="monitoring")
    url = "/api/v1/integrations/pagerduty/enqueue?workflow=monitoring"
    missing = _pd(tenant)
    del missing["payload"]["summary"]
    for body in (
        missing,
        _pd(tenant, event_action="explode"),
        _pd(tenant, event_action="resolve", dedup_key=None),
    ):
        response = await http.post(url, json=body)
        assert response.status_code == 400, response.text
        assert response.json()["status"] == "invalid event"
        assert response.json()["errors"]
    garbage = await http.post(
        url, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 400 and garbage.json()["status"] == "invalid event"
    wrong_key = await http.post(url, json=_pd(tenant, routing_key="awf_not-a-real-key-at-all"))
    assert wrong_key.status_code == 401


async def test_alertmanager_alerts_are_idempotent_and_resolved_resolves(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant, name="monitoring")
    url = "/api/v1/integrations/alertmanager?workflow=monitoring"
    first = await http.post(url, json=AM_FIRING, headers=tenant.headers)
    again = await http.post(url, json=AM_FIRING, headers=tenant.headers)  # AM re-sends
    assert first.json() == {"status": "success", "alerts": 1, "accepted": 1, "duplicates": 0}
    assert again.json()["duplicates"] == 1
    resolved = copy.deepcopy(AM_FIRING)
    resolved["status"] = resolved["alerts"][0]["status"] = "resolved"
    assert (await http.post(url, json=resolved, headers=tenant.headers)).json()["accepted"] == 1
    types = sorted(e["event_type"] for e in await _events(http, tenant))
    assert types == ["step.failed", "step.succeeded"]
    bad = await http.post(url, json={"version": "4", "alerts": []}, headers=tenant.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


async def test_cloudevents_structured_binary_and_batch(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    url = "/api/v1/integrations/cloudevents"
    event = {
        "specversion": "1.0",
        "type": "io.acme.workflow.step.failed",
        "source": "https://acme.example/billing",
        "id": "A234-1234-1234",
        "time": "2018-04-05T17:31:00Z",
        "datacontenttype": "application/json",
        "data": {
            "workflow": "billing-sync",
            "step": "charge-card",
            "vendor": "stripe",
            "error": {"code": "VENDOR_TIMEOUT", "message": "timed out"},
        },
    }
    structured = {**tenant.headers, "Content-Type": "application/cloudevents+json"}
    first = await http.post(url, content=json.dumps(event), headers=structured)
    again = await http.post(url, content=json.dumps(event), headers=structured)
    assert first.status_code == 202, first.text
    assert first.json()["results"][0]["status"] == "accepted"
    assert again.json()["results"][0]["status"] == "duplicate"
    binary = {
        **tenant.headers,
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": "io.acme.workflow.step.recovered",
        "ce-source": "/billing",
        "ce-id": "B-1",
    }
    recovered = await http.post(
        url, json={"workflow": "billing-sync", "step": "charge-card"}, headers=binary
    )
    assert recovered.status_code == 202, recovered.text
    batch = [{**event, "id": f"C-{n}"} for n in range(3)]
    batched = await http.post(
        url,
        content=json.dumps(batch),
        headers={**tenant.headers, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert [r["status"] for r in batched.json()["results"]] == ["accepted"] * 3
    types = sorted(e["event_type"] for e in await _events(http, tenant))
    assert types == ["step.failed"] * 4 + ["step.succeeded"]
    invalid = await http.post(
        url, content=json.dumps({**event, "specversion": "0.3"}), headers=structured
    )
    assert invalid.status_code == 422
    plain = await http.post(
        url, content=b"{}", headers={**tenant.headers, "Content-Type": "text/plain"}
    )
    assert plain.status_code == 415


async def test_pagerduty_dedup_key_semantics_end_to_end(
    isolated_settings: Settings,
    temporal_client: Client,
) -> None:
    settings = isolated_settings
    queue = f"pd-{uuid.uuid4().hex}"
    app = create_app(settings.model_copy(update={"task_queue": queue}), temporal=temporal_client)
    slow = {
        "max_attempts": 3,
        "initial_interval_s": 3600,
        "multiplier": 1,
        "max_interval_s": 3600,
        "jitter": 0,
    }
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        activity_set(settings) as activities,
        build_worker(temporal_client, activities, queue),
        CallbackServer([Reply(503)]) as server,
    ):
        created = (
            await http.post(
                "/api/v1/tenants",
                json={"name": f"pd-{queue[-6:]}"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        ).json()
        tenant = TenantCredentials(uuid.UUID(created["id"]), "pd", created["api_key"])
        await register_workflow(
            http, tenant, name="monitoring", callback_url=server.url, retry_policy=slow
        )
        url = "/api/v1/integrations/pagerduty/enqueue?workflow=monitoring"
        assert (await http.post(url, json=_pd(tenant))).status_code == 202
        key = (await _events(http, tenant))[0]["incident_key"]
        first_run = await _running_run(temporal_client, key)
        resolve = await http.post(
            url,
            json={
                "routing_key": tenant.api_key,
                "event_action": "resolve",
                "dedup_key": "srv01/mysql",
            },
        )
        assert resolve.status_code == 202
        result = await asyncio.wait_for(
            temporal_client.get_workflow_handle(key, run_id=first_run).result(), 30
        )
        assert result["status"] == "resolved"
        # A new occurrence carries its own detection time: after the resolve, not 2015's.
        again = _pd(tenant)
        again["payload"]["timestamp"] = datetime.now(UTC).isoformat()
        assert (await http.post(url, json=again)).status_code == 202
        second_run = await _running_run(temporal_client, key)
        assert second_run != first_run  # after resolve, the same key opens a new incident
        await temporal_client.get_workflow_handle(key).signal("kill")


async def _running_run(client: Client, key: str) -> str:
    for _ in range(200):
        try:
            description = await client.get_workflow_handle(key).describe()
            if description.status is not None and description.status.name == "RUNNING":
                return description.run_id
        except RPCError:  # not started yet by the dispatcher
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{key} never ran")
