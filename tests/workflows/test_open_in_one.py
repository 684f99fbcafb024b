"""A new incident opens in one local activity (patch open-in-one) and stores what four did."""

from __future__ import annotations

import asyncio
import base64
import json

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
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow

POLICY = {"max_attempts": 3, "initial_interval_s": 10, "multiplier": 1, "max_interval_s": 10}


async def _local_activities(handle: WorkflowHandle[IncidentWorkflow, IncidentResult]) -> list[str]:
    """The type of every local activity the run recorded, in order."""
    history = await handle.fetch_history()
    types = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_local_activity":
            data = marker.details["data"].payloads[0].data
            types.append(
                json.loads(base64.b64decode(data) if data[:1] != b"{" else data)["activity_type"]
            )
    return types


async def _decisions(database_url: str, incident_id: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT decision_key, ai_model FROM decisions WHERE incident_id = $1::uuid"
            " ORDER BY created_at, id",
            incident_id,
        )
    finally:
        await conn.close()
    return [(row["decision_key"], row["ai_model"]) for row in rows]


async def test_a_new_incident_opens_classifies_analyses_and_plans_in_one_local_activity(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(503), Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start()
        result = await asyncio.wait_for(handle.result(), 60)
        view = await handle.query(IncidentWorkflow.status)
        await keep_history(handle, "open_in_one_retry_until_success")
    assert (result.status, result.attempts, len(server.calls)) == ("resolved", 2, 2)
    steps = await _local_activities(handle)
    assert steps[0] == "open_and_assess"
    assert not {"open_incident", "classify_incident", "analyse_incident", "plan_remediation"} & set(
        steps
    )
    # The same rows, in the same order, as the four separate steps stored.
    assert await _decisions(settings.plain_database_url, view.incident_id) == [
        ("classify", "mock-detector-v1"),
        ("similarity", "mock-similarity-v1"),
        ("rca", "mock-rca-v1"),
        ("plan", "rules-v1"),
    ]
    statuses = [s for s, _ in await transitions(settings.plain_database_url, view.incident_id)]
    assert statuses == ["open", "remediating", "waiting", "remediating", "resolved"]
    assert view.severity == "high" and view.error_code == "VENDOR_TIMEOUT"
