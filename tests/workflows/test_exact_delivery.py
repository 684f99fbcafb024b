"""Exactly-once counting: redelivered groups are no-ops, across continue-as-new and later runs."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, digest, failure, keep_history
from vocabulary import SignalName
from workflows.incident_state import IncidentInput, IncidentResult, IncidentView
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import EventDigest

PARKED = {
    "max_attempts": 3,
    "initial_interval_s": 3600,
    "multiplier": 2,
    "max_interval_s": 7200,
    "jitter": 0.0,
}
Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]


async def _view_when(
    handle: Handle, done: Callable[[IncidentView], bool], timeout: float = 30
) -> IncidentView:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        view = await handle.query(IncidentWorkflow.status)
        if done(view):
            return view
        await asyncio.sleep(0.1)
    raise AssertionError("the incident never reached the expected state")


def _waiting(view: IncidentView) -> bool:
    return view.status == "waiting"


async def _redeliver(live: IncidentStarter, key: str, group: EventDigest) -> Handle:
    """Signal-with-start a group again, as the dispatcher does after a lost settlement."""
    return await live.client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(
            tenant_id=str(live.tenant.id),
            source_workflow="billing-sync",
            signature=key.rsplit(":", 1)[1],
            step="charge-card",
            error_code="VENDOR_TIMEOUT",
            vendor="stripe",
        ),
        id=key,
        task_queue=live.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=SignalName.EVENT_DIGEST,
        start_signal_args=[group],
    )


async def test_redelivered_digests_are_counted_once_across_continue_as_new(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant, retry_policy=PARKED)
    first = [failure() for _ in range(10)]
    handle = await live.start(events=first, max_signals_per_run=50)
    sent: list[EventDigest] = []
    rng = random.Random(7)
    for _ in range(299):
        group = digest([failure() for _ in range(10)], handle.id)
        sent.append(group)
        await handle.signal(IncidentWorkflow.event_digest, group)
        if rng.random() < 0.2:  # an earlier group again, maybe from before a roll-over
            await handle.signal(IncidentWorkflow.event_digest, rng.choice(sent))
    await _view_when(handle, lambda view: view.event_count >= 3000)
    await asyncio.sleep(0.5)
    view = await handle.query(IncidentWorkflow.status)
    await handle.signal(IncidentWorkflow.kill)
    assert (view.event_count, view.runs > 1) == (3000, True)


async def test_a_group_redelivered_after_its_incident_closed_opens_nothing(
    live: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    await register_workflow(http, tenant, retry_policy=PARKED)
    handle = await live.start(events=[failure(), failure()])
    original = live.last_group  # the very group that opened the incident
    assert original is not None
    await handle.signal(IncidentWorkflow.kill)
    assert (await handle.result()).status == "killed"

    again = await _redeliver(live, handle.id, original)
    result = await again.result()
    await keep_history(again, "redelivery_discarded")
    assert (result.status, result.event_count) == ("suppressed", 0)
    assert "redelivery" in (result.reason or "")
    assert await _incident_rows(settings, handle.id) == 1

    fresh = await _redeliver(live, handle.id, digest([failure()], handle.id))
    view = await _view_when(fresh, _waiting)
    await fresh.signal(IncidentWorkflow.kill)
    assert view.event_count == 1
    assert await _incident_rows(settings, handle.id) == 2


async def test_a_redelivered_success_never_resolves_a_later_run(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant, retry_policy=PARKED)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    broke = failure(occurred_at=t0)
    handle = await live.start(events=[broke])
    await _view_when(handle, _waiting)
    resolve_key = f"resolve:{live.tenant.id}:billing-sync:charge-card"
    fixed = failure(event_type="step.succeeded", code=None, occurred_at=t0 + timedelta(seconds=1))
    success = digest([fixed], resolve_key)
    await handle.signal(IncidentWorkflow.event_digest, success)
    assert (await handle.result()).status == "resolved"

    broke_again = failure(occurred_at=t0 + timedelta(seconds=2))
    later = await _redeliver(live, handle.id, digest([broke_again], handle.id))
    await _view_when(later, _waiting)
    await later.signal(IncidentWorkflow.event_digest, success)  # the same group, redelivered
    await asyncio.sleep(1)
    view = await later.query(IncidentWorkflow.status)
    await later.signal(IncidentWorkflow.kill)
    assert (view.status, view.event_count) == ("waiting", 1)  # a no-op, not even counted


async def test_signals_during_a_long_callback_roll_over_right_after_it(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    async with CallbackServer([Reply(503, delay_s=4), Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=PARKED)
        handle = await live.start(max_signals_per_run=5)
        while not server.calls:
            await asyncio.sleep(0.05)
        for _ in range(20):  # a storm while the callback is still running
            await handle.signal(
                IncidentWorkflow.event_digest, digest([failure() for _ in range(3)], handle.id)
            )
        view = await _view_when(handle, lambda view: view.runs > 1 and _waiting(view))
        await handle.signal(IncidentWorkflow.kill)
    assert view.event_count == 61
    assert len(server.calls) == 1


async def _incident_rows(settings: Settings, workflow_id: str) -> int:
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM incidents WHERE workflow_id = $1", workflow_id
        )
        return count
    finally:
        await conn.close()
