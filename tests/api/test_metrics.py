"""`/metrics` parses as Prometheus text and its counters move as events flow."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.intake import QUIETED_BY_TENANT_CAP
from api.metrics import DISPATCHER_ERROR_KINDS, QUIETED_KINDS
from api.services.gauges import LIVE_STATUSES
from api.services.ingest import QUIETED_BY_KILL_SWITCH, QUIETED_BY_WINDOW
from devstack.http_target import CallbackServer, Reply
from tests.api.incident_views import wait_for_incident
from tests.conftest import TenantCredentials
from tests.utils.builders import failure_event, register_workflow
from tests.utils.incidents import IncidentStarter
from vocabulary import Remediation
from workflows.incident_workflow import IncidentWorkflow

SLOW = {
    "max_attempts": 5,
    "initial_interval_s": 3600,
    "multiplier": 1,
    "max_interval_s": 3600,
    "jitter": 0,
}


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


async def test_open_incidents_and_dispatcher_errors_are_exported_before_any_error(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW)
        handle = await live.start()
        await wait_for_incident(http, tenant, handle.id, "waiting")
        samples = await _samples(http)
        await handle.signal(IncidentWorkflow.kill)
    for status in LIVE_STATUSES:  # every live status has its series, zero or not
        assert ("awfdrs_open_incidents", (("status", status),)) in samples
    assert samples[("awfdrs_open_incidents", (("status", "waiting"),))] >= 1
    for kind in DISPATCHER_ERROR_KINDS:
        assert ("awfdrs_dispatcher_errors_total", (("kind", kind),)) in samples
    for remediation, reason in QUIETED_KINDS:  # an alert's `increase()` sees the first one
        labels = (("reason", reason), ("remediation", remediation))
        assert ("awfdrs_quieted_events_total", labels) in samples


def test_the_quieted_series_are_the_ways_intake_quiets_an_event() -> None:
    reasons = {QUIETED_BY_KILL_SWITCH, QUIETED_BY_WINDOW, QUIETED_BY_TENANT_CAP}
    assert {reason for _, reason in QUIETED_KINDS} == reasons
    assert {remediation for remediation, _ in QUIETED_KINDS} == {
        Remediation.SUPPRESSED,
        Remediation.HELD,
        Remediation.DEFERRED,
    }
