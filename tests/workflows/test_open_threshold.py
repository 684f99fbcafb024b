"""A retry policy's `open_after`: remediation waits for N failures within W, else closes."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from temporalio.client import WorkflowHandle

from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, digest, failure, keep_history
from workflows.incident_logic import KEPT_FAILURE_TIMES, keep_failure_time
from workflows.incident_state import IncidentResult, IncidentState, IncidentView, RetryPlan
from workflows.incident_workflow import IncidentWorkflow
from workflows.open_threshold import below_threshold_reason, most_failures_within, waiting_label

POLICY = {
    "max_attempts": 3,
    "initial_interval_s": 5,
    "multiplier": 2,
    "max_interval_s": 20,
    "open_after": {"count": 3, "within_s": 60},
}
SECOND = 1_000_000


def test_the_most_failures_in_one_window_slide_over_sorted_times() -> None:
    assert most_failures_within([], 60) == 0
    assert most_failures_within([0, 30 * SECOND, 61 * SECOND], 60) == 2
    assert most_failures_within([0, 30 * SECOND, 60 * SECOND], 60) == 3
    assert most_failures_within([0, 100 * SECOND, 110 * SECOND, 150 * SECOND], 60) == 3


def test_failure_times_are_kept_in_order_and_bounded() -> None:
    state = IncidentState()
    for at in [5, 1, 3, *range(10, 10 + KEPT_FAILURE_TIMES)]:
        keep_failure_time(state, at)
    assert len(state.failure_times_us) == KEPT_FAILURE_TIMES
    assert state.failure_times_us == sorted(state.failure_times_us)
    assert state.failure_times_us[0] == 10  # the oldest (1, 3, 5) fell out first


def test_labels_name_the_count_the_window_and_what_arrived() -> None:
    plan = RetryPlan("p", 3, 5, 2, 20, 0.1, open_after_count=3, open_after_within_s=60)
    assert waiting_label(plan, 2) == "remediation starts at 3 failures within 60 s (2 so far)"
    assert below_threshold_reason(plan, 2) == "below threshold: 2 of 3 failures within 60 s"


async def _incident_row(settings: Settings, incident_id: str) -> tuple[str, list[str]]:
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        status = await conn.fetchval(
            "SELECT status FROM incidents WHERE id = $1::uuid", incident_id
        )
        reasons = await conn.fetch(
            "SELECT status, reason FROM incident_transitions WHERE incident_id = $1::uuid"
            " ORDER BY id",
            incident_id,
        )
    finally:
        await conn.close()
    return status, [f"{r['status']}: {r['reason']}" for r in reasons]


async def _until_waiting(handle: WorkflowHandle[IncidentWorkflow, IncidentResult]) -> IncidentView:
    """Poll the live view until the incident waits for its threshold (time is not skipped)."""
    for _ in range(200):
        view = await handle.query(IncidentWorkflow.status)
        if view.status == "waiting":
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"never waiting: {view.status}")


async def test_two_failures_of_three_close_below_threshold_without_a_call(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start(events=[failure(), failure()])
        result = await asyncio.wait_for(handle.result(), 60)
        view = await handle.query(IncidentWorkflow.status)
        await keep_history(handle, "open_threshold_below")
    assert server.calls == []
    assert (result.status, result.attempts, result.event_count) == ("below_threshold", 0, 2)
    assert result.reason == "below threshold: 2 of 3 failures within 60 s"
    status, transitions = await _incident_row(settings, view.incident_id)
    assert status == "below_threshold"
    assert transitions[-1] == "below_threshold: below threshold: 2 of 3 failures within 60 s"
    assert not any(t.startswith("remediating") for t in transitions)
    assert "waiting: remediation starts at 3 failures within 60 s (2 so far)" in transitions
    listed = await http.get(
        "/api/v1/incidents", params={"status": "below_threshold"}, headers=tenant.headers
    )
    assert [i["id"] for i in listed.json()["items"]] == [view.incident_id]
    timeline = await http.get(
        f"/api/v1/incidents/{view.incident_id}/timeline", headers=tenant.headers
    )
    states = [
        (e["summary"], e["cause"]) for e in timeline.json()["entries"] if e["kind"] == "state"
    ]
    assert ("status → below_threshold", "below threshold: 2 of 3 failures within 60 s") in states


async def test_the_third_failure_within_the_window_starts_remediation(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start(events=[failure(), failure()])
        view = await _until_waiting(handle)
        assert view.next_action == "remediation starts at 3 failures within 60 s (2 so far)"
        assert view.next_action_at is not None
        assert server.calls == []
        third = [failure()]
        await skipping.store(third, key=handle.id)
        await handle.signal(IncidentWorkflow.event_digest, digest(third, handle.id))
        result = await asyncio.wait_for(handle.result(), 60)
        await keep_history(handle, "open_threshold_met")
    assert (result.status, result.attempts, result.event_count) == ("resolved", 1, 3)
    assert len(server.calls) == 1


async def test_a_success_while_held_resolves_without_a_call(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start(events=[failure()])
        await _until_waiting(handle)
        fixed = [failure(event_type="step.succeeded")]
        await skipping.store(fixed, key=handle.id)
        await handle.signal(IncidentWorkflow.event_digest, digest(fixed, handle.id))
        result = await asyncio.wait_for(handle.result(), 60)
    assert (result.status, result.attempts) == ("resolved", 0)
    assert server.calls == []


@pytest.mark.parametrize(
    ("open_after", "field"),
    [
        ({"count": 0, "within_s": 60}, "count"),
        ({"count": 2.5, "within_s": 60}, "count"),
        ({"count": 3, "within_s": 0}, "within_s"),
        ({"count": 3, "within_s": 86_401}, "within_s"),
    ],
)
async def test_a_bad_threshold_is_a_422_naming_its_field(
    http: httpx.AsyncClient, tenant: TenantCredentials, open_after: dict[str, float], field: str
) -> None:
    policy = {**POLICY, "open_after": open_after}
    response = await http.post(
        "/api/v1/workflows",
        json={
            "name": "billing-sync",
            "callback_url": "http://127.0.0.1:9/cb",
            "retry_policy": policy,
        },
        headers=tenant.headers,
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"].startswith(f"body.retry_policy.inline.open_after.{field}: ")


async def test_a_registered_threshold_reads_back_as_sent(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    created = await register_workflow(http, tenant, retry_policy=POLICY)
    assert created["retry_policy"]["open_after"] == {"count": 3, "within_s": 60}
    plain = await register_workflow(
        http, tenant, name="no-threshold", retry_policy={**POLICY, "open_after": None}
    )
    assert plain["retry_policy"].get("open_after") is None
