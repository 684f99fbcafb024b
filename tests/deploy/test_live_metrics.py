"""Every metric the dashboards and alert rules read is exported by a live API and worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from api.app import create_app
from devstack.http_target import CallbackServer, Reply
from devstack.process import free_port
from settings import Settings
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.deploy.promql import dashboard_expressions, metric_names, rule_expressions
from tests.utils.builders import failure_event, register_workflow
from worker import activity_set, build_worker, metrics_runtime
from workflows.converter import DATA_CONVERTER

# Prometheus makes these itself for every target; no process exports them.
SYNTHESIZED = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
FAILING = {
    "max_attempts": 8,
    "initial_interval_s": 0.2,
    "multiplier": 1,
    "max_interval_s": 0.2,
    "jitter": 0,
}


def _wanted() -> set[str]:
    expressions = [expr for _, expr in (*rule_expressions(), *dashboard_expressions())]
    return set().union(*(metric_names(expr) for expr in expressions)) - SYNTHESIZED


def _names(exposition: str) -> set[str]:
    """Every sample name of a scrape, with family names too (`_bucket` and `_count` alike)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        if family.samples:
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
    return names


@asynccontextmanager
async def _api(settings: Settings, temporal: Client) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal=temporal)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


async def _tenant(http: httpx.AsyncClient) -> TenantCredentials:
    created = await http.post(
        "/api/v1/tenants",
        json={"name": uuid.uuid4().hex[:12]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    body = created.json()
    return TenantCredentials(uuid.UUID(body["id"]), body["name"], body["api_key"])


async def _scrape_until(
    scrapes: list[Callable[[], Any]], wanted: set[str], timeout: float
) -> set[str]:
    """Scrape every endpoint until all `wanted` names appear; return those still missing."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        seen: set[str] = set()
        for scrape in scrapes:
            seen |= _names(await scrape())
        missing = wanted - seen
        if not missing or asyncio.get_running_loop().time() > deadline:
            return missing
        await asyncio.sleep(0.5)


async def _failing_dispatcher_names(settings: Settings, tenant_body: dict[str, Any]) -> set[str]:
    """Send an event through an API whose Temporal is unreachable; return its metric names.

    The event stays in the outbox for the healthy API started afterwards.
    """
    unreachable = await Client.connect(
        f"127.0.0.1:{free_port()}", data_converter=DATA_CONVERTER, lazy=True
    )
    async with _api(settings, unreachable) as broken:
        tenant = await _tenant(broken)
        await register_workflow(broken, tenant, **tenant_body)
        sent = await broken.post(
            "/api/v1/events", json=failure_event(vendor="metrics-vendor"), headers=tenant.headers
        )
        assert sent.status_code == 202, sent.text

        async def scrape() -> str:
            return (await broken.get("/metrics")).text

        wanted = {"awfdrs_dispatcher_errors_total"}
        assert not await _scrape_until([scrape], wanted, 30), "the dispatcher never failed"
        return _names(await scrape())


async def test_every_metric_of_the_dashboards_and_rules_is_exported(
    isolated_settings: Settings, temporal_client: Client
) -> None:
    wanted = _wanted()
    assert {"awfdrs_outbox_oldest_age_seconds", "temporal_worker_task_slots_available"} <= wanted
    settings = isolated_settings.model_copy(
        update={"task_queue": f"metrics-{uuid.uuid4().hex}", "dispatcher_poll_interval_s": 0.2}
    )
    address = f"127.0.0.1:{free_port()}"
    worker_client = await Client.connect(
        settings.temporal_address, data_converter=DATA_CONVERTER, runtime=metrics_runtime(address)
    )
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(CallbackServer([Reply(503)] * 8))
        # Its event reaches the healthy API's dispatcher and fails five callbacks: the vendor's
        # breaker opens (vendors.yaml defaults: 5 calls at 50% failures).
        failed = await _failing_dispatcher_names(
            settings, {"callback_url": server.url, "retry_policy": FAILING}
        )
        http = await stack.enter_async_context(_api(settings, temporal_client))
        own = await stack.enter_async_context(activity_set(settings))
        await stack.enter_async_context(build_worker(worker_client, own, settings.task_queue))
        scraper = await stack.enter_async_context(httpx.AsyncClient())
        tenant = await _tenant(http)
        bad = await http.post("/api/v1/events", json={"workflow": 1}, headers=tenant.headers)
        assert bad.status_code == 422

        async def api_metrics() -> str:
            return (await http.get("/metrics")).text

        async def worker_metrics() -> str:
            return (await scraper.get(f"http://{address}/metrics")).text

        missing = await _scrape_until([api_metrics, worker_metrics], wanted - failed, 60)
        assert len(server.calls) >= 5, "the failing callbacks did not happen"
    assert not missing, f"read by the dashboards or rules but exported by nobody: {missing}"
