"""An attempt takes three steps, not five (patch lean-attempt), and stores what they did."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, keep_history
from tests.workflows.observe import transitions
from tests.workflows.test_open_in_one import POLICY, _local_activities
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow


async def _callback_results(
    handle: WorkflowHandle[IncidentWorkflow, IncidentResult],
) -> list[dict[str, Any]]:
    """What each callback activity returned, in order."""
    history = await handle.fetch_history()
    return [
        json.loads(event.activity_task_completed_event_attributes.result.payloads[0].data)
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]


async def test_an_attempt_stores_its_action_with_the_projection_and_counts_its_own_outcome(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(503), Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start()  # names the vendor "stripe"
        result = await asyncio.wait_for(handle.result(), 60)
        view = await handle.query(IncidentWorkflow.status)
        await keep_history(handle, "current_retry_until_success")
    assert (result.status, result.attempts, len(server.calls)) == ("resolved", 2, 2)
    steps = await _local_activities(handle)
    # Before each attempt: the gate (which also counts the vendor's incidents), then one step
    # storing the pending action with the projection; after it, no step counting the outcome.
    assert steps == [
        "open_and_assess",
        "record_incident",
        "check_gate",
        "start_attempt",
        "record_incident",
        "check_gate",
        "start_attempt",
        "record_incident",
    ]
    callbacks = await _callback_results(handle)
    assert [(c["outcome"], c["breaker"]) for c in callbacks] == [
        ("retryable", "closed"),
        ("success", "closed"),
    ]
    statuses = [s for s, _ in await transitions(settings.plain_database_url, view.incident_id)]
    assert statuses == ["open", "remediating", "waiting", "remediating", "resolved"]
    rows = await _actions(settings.plain_database_url, view.incident_id)
    assert [(a, s) for a, s, _ in rows] == [(1, "failed"), (2, "succeeded")]
    assert all("breaker" not in result for _, _, result in rows)


async def _actions(database_url: str, incident_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT attempt, status, result::text FROM actions WHERE incident_id = $1::uuid"
            " ORDER BY attempt",
            incident_id,
        )
    finally:
        await conn.close()
    return [(r["attempt"], r["status"], json.loads(r["result"])) for r in rows]
