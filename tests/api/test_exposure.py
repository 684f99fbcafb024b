"""Scopes and exposure: PagerDuty control needs an operator key, acks are rate limited,
`/metrics` behind a token or on its own port, readiness without raw exception text."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import RPCError

from api.app import create_app
from devstack.process import free_port, port_in_use
from settings import Settings
from tests.api.served import served_api
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import register_workflow

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PD_URL = "/api/v1/integrations/pagerduty/enqueue?workflow=monitoring"
METRICS_TOKEN = "metrics-token-0123456789abcdef"


def _pd(routing_key: str, action: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": "srv01/mysql",
    }
    if action == "trigger":
        body["payload"] = {"summary": "disk full", "source": "srv01", "severity": "critical"}
    return body


async def _ingest_key(http: httpx.AsyncClient, tenant: TenantCredentials) -> str:
    created = await http.post(
        f"/api/v1/tenants/{tenant.id}/api-keys", json={"scope": "ingest"}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["api_key"]
    return key


async def _incident_key(http: httpx.AsyncClient, tenant: TenantCredentials) -> str:
    events = (await http.get("/api/v1/events", headers=tenant.headers)).json()["items"]
    assert len(events) == 1
    key: str = events[0]["incident_key"]
    return key


async def _signals(client: Client, workflow_id: str) -> list[str]:
    """The signal names in the incident's history, once the dispatcher has started it."""
    for _ in range(100):
        try:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        except RPCError:  # not started by the dispatcher yet
            await asyncio.sleep(0.1)
            continue
        return [
            event.workflow_execution_signaled_event_attributes.signal_name
            for event in history.events
            if event.HasField("workflow_execution_signaled_event_attributes")
        ]
    raise AssertionError(f"{workflow_id} never started")


async def test_an_ingest_keys_pagerduty_acknowledge_and_resolve_get_403(
    http: httpx.AsyncClient, tenant: TenantCredentials, temporal_client: Client
) -> None:
    await register_workflow(http, tenant, name="monitoring")
    ingest = await _ingest_key(http, tenant)
    assert (await http.post(PD_URL, json=_pd(ingest, "trigger"))).status_code == 202
    incident = await _incident_key(http, tenant)
    try:
        for action in ("acknowledge", "resolve"):
            refused = await http.post(PD_URL, json=_pd(ingest, action))
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert "need an operator key" in refused.json()["detail"]
        assert await _incident_key(http, tenant) == incident  # the resolve stored no event
        assert "acknowledge" not in await _signals(temporal_client, incident)
        operator = await http.post(PD_URL, json=_pd(tenant.api_key, "acknowledge"))
        assert operator.status_code == 202, operator.text
        assert "acknowledge" in await _signals(temporal_client, incident)
    finally:
        await temporal_client.get_workflow_handle(incident).terminate("test over")


async def test_pagerduty_acknowledges_count_against_the_ingest_rate(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant, name="monitoring")
    limited = await http.patch(
        f"/api/v1/tenants/{tenant.id}", json={"ingest_rate_per_s": 3}, headers=ADMIN
    )
    assert limited.status_code == 200
    answers = [await http.post(PD_URL, json=_pd(tenant.api_key, "acknowledge")) for _ in range(8)]
    codes = [answer.status_code for answer in answers]
    assert codes[:3] == [202] * 3
    assert 429 in codes[3:]
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["content-type"] == "application/problem+json"


@pytest.fixture
async def token_app(settings: Settings, temporal_client: Client) -> AsyncIterator[FastAPI]:
    """The API with AWFDRS_METRICS_TOKEN set."""
    app = create_app(
        settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)}),
        temporal=temporal_client,
    )
    async with app.router.lifespan_context(app):
        yield app


async def test_metrics_token_is_required_when_set(token_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=token_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic x"}):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["www-authenticate"] == "Bearer"
            assert METRICS_TOKEN not in refused.text
        allowed = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert allowed.status_code == 200
        assert allowed.headers["content-type"].startswith("text/plain")
        assert (await client.get("/api/v1/health")).status_code == 200


def _metric_names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def test_metrics_port_serves_metrics_apart_from_the_api(settings: Settings, tmp_path: Path) -> None:
    metrics_port = free_port()
    env = {"AWFDRS_METRICS_PORT": str(metrics_port), "AWFDRS_METRICS_TOKEN": METRICS_TOKEN}
    with served_api(settings, tmp_path / "api.log", **env) as api:
        for _ in range(100):
            if port_in_use(metrics_port):
                break
            time.sleep(0.05)
        side = f"http://127.0.0.1:{metrics_port}"
        token = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{api.url}/api/v1/health").status_code == 200
            hidden = client.get(f"{api.url}/metrics", headers=token)
            assert hidden.status_code == 404
            assert hidden.headers["content-type"] == "application/problem+json"
            assert client.get(f"{side}/metrics").status_code == 401
            assert client.get(f"{side}/api/v1/health").status_code == 404
            scraped = client.get(f"{side}/metrics", headers=token)
        assert scraped.status_code == 200
        assert {"awfdrs_http_requests", "awfdrs_outbox_depth"} <= _metric_names(scraped.text)
        # The same process's registry: the API port's requests are counted there.
        assert 'route="/api/v1/health"' in scraped.text


async def test_readiness_names_no_host_port_or_dsn_while_everything_is_down(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    ports = [str(free_port()) for _ in range(3)]
    secret = f"pw-{uuid.uuid4().hex[:8]}"
    down = settings.model_copy(
        update={
            "database_url": f"postgresql://awfdrs:{secret}@127.0.0.1:{ports[0]}/awfdrs",
            "redis_url": f"redis://:{secret}@127.0.0.1:{ports[1]}/0",
            "temporal_address": f"127.0.0.1:{ports[2]}",
            "dispatcher_poll_interval_s": 0.1,
        }
    )
    app = create_app(down)
    caplog.set_level(logging.WARNING, logger="awfdrs.health")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        for _ in range(50):
            response = await client.get("/api/v1/health/ready")
            if response.json()["checks"]["dispatcher"]["last_error"]:
                break
            await asyncio.sleep(0.1)
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["postgresql", "redis", "temporal"]
    assert {name: body["checks"][name]["error"] for name in body["down"]} == {
        "postgresql": "refused",
        "redis": "refused",
        "temporal": "unreachable",
    }
    assert body["checks"]["dispatcher"]["last_error"] == "pass"
    shown = json.dumps({key: value for key, value in body.items() if key != "correlation_id"})
    for leak in ("127.0.0.1", secret, "://", "Error", *ports):
        assert leak not in shown, leak
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert all(port in logged for port in ports)  # the detail is kept, in the server's log
