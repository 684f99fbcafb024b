"""`/metrics` parses as Prometheus text and its counters move as events flow."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TenantCredentials
from tests.utils.builders import failure_event, register_workflow


async def _samples(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_counters_move_as_events_flow(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    before = await _samples(http)
    event = failure_event()
    await http.post("/api/v1/events", json=event, headers=tenant.headers)
    await http.post("/api/v1/events", json=event, headers=tenant.headers)
    await http.post("/api/v1/events", json={**event, "payload": {"x": 1}}, headers=tenant.headers)
    after = await _samples(http)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("awfdrs_ingest_events_total", outcome="accepted") == 1
    assert delta("awfdrs_ingest_events_total", outcome="duplicate") == 1
    assert delta("awfdrs_ingest_events_total", outcome="conflict") == 1
    assert (
        delta("awfdrs_http_requests_total", route="/api/v1/events", method="POST", status="202")
        == 1
    )
    assert (
        delta("awfdrs_http_requests_total", route="/api/v1/events", method="POST", status="409")
        == 1
    )
    assert ("awfdrs_outbox_depth", ()) in after
    assert ("awfdrs_outbox_oldest_age_seconds", ()) in after
    assert ("awfdrs_dispatcher_signals_total", ()) in after
