"""The worker's Prometheus endpoint: SDK metrics plus AWFDRS counters, as incidents run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from devstack.http_target import CallbackServer, Reply
from devstack.process import free_port
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter
from worker import build_worker, metrics_runtime
from workflows.converter import DATA_CONVERTER

POLICY = {
    "max_attempts": 3,
    "initial_interval_s": 1,
    "multiplier": 1,
    "max_interval_s": 1,
    "jitter": 0,
}


async def test_worker_metrics_count_incidents_actions_and_gate_answers(
    settings: Settings,
    activities: Sequence[Callable[..., Any]],
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    client = await Client.connect(
        settings.temporal_address,
        data_converter=DATA_CONVERTER,
        runtime=metrics_runtime(address),
    )
    queue = f"metrics-{uuid.uuid4().hex}"
    async with (
        CallbackServer([Reply(503), Reply(200)]) as server,
        build_worker(client, activities, queue),
    ):
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await IncidentStarter(client, tenant, queue, settings.plain_database_url).start()
        assert (await asyncio.wait_for(handle.result(), 30)).status == "resolved"
        await asyncio.sleep(1.5)  # the exporter refreshes periodically
        async with httpx.AsyncClient() as scraper:
            text = (await scraper.get(f"http://{address}/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return sum(
            v for (n, lab), v in samples.items() if n == name and set(labels.items()) <= set(lab)
        )

    assert value("awfdrs_incidents_total", outcome="opened") == 1
    assert value("awfdrs_incidents_total", outcome="resolved") == 1
    assert value("awfdrs_actions_total", type="retry", outcome="retryable") == 1
    assert value("awfdrs_actions_total", type="retry", outcome="success") == 1
    assert value("awfdrs_gate_answers_total", verdict="permit") == 2
    # Only the first attempt is observed, in seconds since its failure was accepted.
    assert value("awfdrs_first_callback_seconds_count") == 1
    assert 0 < value("awfdrs_first_callback_seconds_sum") < 30
    assert value("awfdrs_first_callback_seconds_bucket", le="300") == 1  # seconds buckets
    assert any(name.startswith("temporal_") for name, _ in samples)
    assert len(server.calls) == 2
