"""Approval gates on the time-skipping server: an approval nobody gives escalates the incident."""

from __future__ import annotations

import asyncio

import httpx
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devstack.http_target import CallbackServer, Reply
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, keep_history
from vocabulary import UpdateName
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import ApprovalRequest

FIRST = {
    "max_attempts": 3,
    "initial_interval_s": 10,
    "multiplier": 1,
    "max_interval_s": 10,
    "jitter": 0.0,
    "approval": "first",
}
Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]


async def _until_status(handle: Handle, status: str) -> None:
    for _ in range(300):
        if (await handle.query(IncidentWorkflow.status)).status == status:
            return
        await asyncio.sleep(0.05)
    view = await handle.query(IncidentWorkflow.status)
    raise AssertionError(f"status never became {status}; it is {view.status}")


async def test_an_approval_nobody_gives_times_out_into_escalation(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=FIRST)
        handle = await skipping.start()
        await _until_status(handle, "awaiting_approval")
        waiting = await handle.query(IncidentWorkflow.status)
        await skipping_env.sleep(1800)  # AWFDRS_APPROVAL_TIMEOUT_S's default
        await _until_status(handle, "escalated")
        escalated = await handle.query(IncidentWorkflow.status)
        await handle.signal(IncidentWorkflow.kill)
        await asyncio.wait_for(handle.result(), 60)
        await keep_history(handle, "approval_first_timeout")
        timeline = await http.get(
            f"/api/v1/incidents/{waiting.incident_id}/timeline", headers=tenant.headers
        )
    assert waiting.next_action is not None and "retry #1 → 127.0.0.1" in waiting.next_action
    # The ladder's first page may already have replaced latest_action: the transition keeps it.
    states = [
        (e["summary"], e["cause"]) for e in timeline.json()["entries"] if e["kind"] == "state"
    ]
    assert ("status → escalated", "escalating: approval timed out") in states
    assert escalated.attempts == 0
    assert not server.calls  # the unapproved call never ran


async def test_every_attempt_asks_again_after_its_backoff(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    every = {**FIRST, "approval": "every"}
    async with CallbackServer([Reply(503), Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=every)
        handle = await skipping.start()
        await _until_status(handle, "awaiting_approval")
        approval = ApprovalRequest(by="alice", reason="vendor is back")
        first = await handle.execute_update(UpdateName.APPROVE, approval, result_type=str)
        await _until_status(handle, "waiting")  # retry #1 answered 503: a backoff, then ask
        calls_after_first = len(server.calls)
        await skipping_env.sleep(15)
        await _until_status(handle, "awaiting_approval")
        second = await handle.query(IncidentWorkflow.status)
        await handle.execute_update(UpdateName.APPROVE, ApprovalRequest(by="bob"), result_type=str)
        result = await asyncio.wait_for(handle.result(), 60)
    assert first == "approved by alice: vendor is back"
    assert calls_after_first == 1
    assert second.next_action is not None and "retry #2 → 127.0.0.1" in second.next_action
    assert (result.status, result.attempts, len(server.calls)) == ("resolved", 2, 2)
