"""Tenants get a Temporal Web UI link only where one is configured (never by default)."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import ANY

import httpx
from temporalio.client import Client

from activities.escalation import pagerduty_body
from api.app import create_app
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.incidents import IncidentStarter
from vocabulary import PageSeverity
from workflows.activity_payloads import EscalationRequest
from workflows.incident_state import EscalationStep


async def _views(http: httpx.AsyncClient, tenant: TenantCredentials, workflow_id: str) -> list[Any]:
    """The incident as the list, the detail and the timeline show it."""
    for _ in range(200):
        items = (await http.get("/api/v1/incidents", headers=tenant.headers)).json()["items"]
        found = [item for item in items if item["workflow_id"] == workflow_id]
        if found:
            path = f"/api/v1/incidents/{found[0]['id']}"
            detail = (await http.get(path, headers=tenant.headers)).json()
            timeline = (await http.get(f"{path}/timeline", headers=tenant.headers)).json()
            return [found[0], detail, timeline]
        await asyncio.sleep(0.1)
    raise AssertionError(f"incident {workflow_id} was never recorded")


async def test_no_ui_url_means_null_links_and_a_configured_one_means_links(
    live: IncidentStarter,
    settings: Settings,
    temporal_client: Client,
    tenant: TenantCredentials,
) -> None:
    handle = await live.start()
    production_like = settings.model_copy(
        update={"env": "production", "temporal_ui_url": None, "dispatcher_enabled": False}
    )
    configured = settings.model_copy(
        update={"temporal_ui_url": "https://ui.example", "dispatcher_enabled": False}
    )
    links = {}
    for name, app_settings in (("unset", production_like), ("configured", configured)):
        app = create_app(app_settings, temporal=temporal_client)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as http,
        ):
            links[name] = [view["web_ui_url"] for view in await _views(http, tenant, handle.id)]
    assert links["unset"] == [None, None, None]
    expected = f"https://ui.example/namespaces/default/workflows/{handle.id}"
    assert links["configured"] == [expected] * 3


def test_a_page_carries_the_ui_link_only_when_there_is_one() -> None:
    request = EscalationRequest(
        tenant_id="t",
        incident_id="i",
        workflow_id="incident:t:s",
        level=1,
        step=EscalationStep("on-call", "https://pager.example", 900, PageSeverity.ERROR),
        summary="billing-sync VENDOR_TIMEOUT at stripe",
        source_workflow="billing-sync",
        error_code="VENDOR_TIMEOUT",
        vendor="stripe",
        event_count=1,
        attempts=3,
        correlation_id="corr-test",
    )
    assert "links" not in pagerduty_body(request, None)
    linked = pagerduty_body(request, "https://ui.example/x")
    assert linked["links"] == [{"href": "https://ui.example/x", "text": ANY}]
