"""An attempt takes three steps, not five (patch lean-attempt), and stores what they did."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devstack.http_target import CallbackServer, Reply
from settings import Settings, SettingsError
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, keep_history
from tests.workflows.observe import transitions
from tests.workflows.test_open_in_one import POLICY, _local_activities
from worker import build_worker
from workflows import patches
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


async def test_held_patches_keep_new_runs_replayable_by_the_previous_build(
    skipping_env: WorkflowEnvironment,
    activities: Sequence[Callable[..., Any]],
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    held = [patches.CURRENT, patches.LEAN_ATTEMPT, patches.QUIET_OPENING]
    queue = f"test-{uuid.uuid4().hex}"
    async with (
        CallbackServer([Reply(503), Reply(200)]) as server,
        build_worker(skipping_env.client, activities, queue, held_patches=held),
    ):
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        starter = IncidentStarter(skipping_env.client, tenant, queue, settings.plain_database_url)
        handle = await starter.start()
        result = await asyncio.wait_for(handle.result(), 60)
    assert (result.status, result.attempts) == ("resolved", 2)
    # The steps (and markers) of the build before these patches: a worker of that build replays it.
    steps = await _local_activities(handle)
    assert "start_attempt" not in steps and "record_outcome" in steps, steps
    markers = await _patch_markers(handle)
    assert patches.OPEN_IN_ONE in markers and not set(held) & set(markers), markers


def test_an_unknown_held_patch_stops_the_worker_at_start() -> None:
    with pytest.raises(SettingsError, match="unknown patch id"):
        build_worker(None, [], "q", held_patches=["lean-atempt"])  # type: ignore[arg-type]


async def _patch_markers(handle: WorkflowHandle[IncidentWorkflow, IncidentResult]) -> list[str]:
    """The patch id of every patch marker the run recorded, in order."""
    history = await handle.fetch_history()
    ids = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if (
            event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and marker.marker_name == "core_patch"
        ):
            ids.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return ids
