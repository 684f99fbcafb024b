"""IncidentWorkflow on the time-skipping server, with real PostgreSQL and a real HTTP callback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable

import asyncpg
import httpx
from standardwebhooks import Webhook
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devstack.http_target import CallbackServer, Reply
from models.secret_box import SecretBox
from models.signing import key_of
from models.stored_secrets import SIGNING_SECRETS
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, failure, keep_history
from tests.workflows.observe import transitions
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import EventBatch, KillRequest, OperatorRequest

POLICY = {
    "max_attempts": 4,
    "initial_interval_s": 10,
    "multiplier": 3,
    "max_interval_s": 100,
    "jitter": 0.1,
}


async def _eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def _result(handle: WorkflowHandle[IncidentWorkflow, IncidentResult]) -> IncidentResult:
    return await asyncio.wait_for(handle.result(), 60)


async def _status(handle: WorkflowHandle[IncidentWorkflow, IncidentResult]) -> str:
    return (await handle.query(IncidentWorkflow.status)).status


async def _timers(handle: WorkflowHandle[IncidentWorkflow, IncidentResult]) -> list[float]:
    history = await handle.fetch_history()
    return [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


async def test_retries_until_the_callback_succeeds_with_policy_gaps(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(503), Reply(503), Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start()
        result = await _result(handle)
        view = await handle.query(IncidentWorkflow.status)
        await keep_history(handle, "retry_until_success")
    assert result.status == "resolved"
    assert result.attempts == 3
    assert len(server.calls) == 3
    assert server.keys() == [f"{view.incident_id}:{n}" for n in (1, 2, 3)]
    first, second = await _timers(handle)
    assert 10 <= first <= 11
    assert 30 <= second <= 33
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        sealed = await conn.fetchval(
            "SELECT secret_encrypted FROM signing_secrets WHERE tenant_id = $1", tenant.id
        )
        statuses = await conn.fetch(
            "SELECT attempt, status FROM actions WHERE tenant_id = $1 ORDER BY attempt", tenant.id
        )
        incident = await conn.fetchrow(
            "SELECT status, attempts FROM incidents WHERE id = $1::uuid", view.incident_id
        )
    finally:
        await conn.close()
    call = server.calls[0]
    assert call.headers["x-correlation-id"] == "corr-test"
    assert call.body["attempt"] == 1 and call.body["payload"] == {"invoice": "inv-1"}
    raw = await _raw_body(call.body)
    secret = SecretBox.from_settings(settings).decrypt(
        sealed, context=SIGNING_SECRETS.context(tenant.id)
    )
    expected = "sha256=" + hmac.new(key_of(secret), raw, hashlib.sha256).hexdigest()
    assert call.headers["x-awfdrs-signature"] == expected
    # The receiver's view: Standard Webhooks, the attempt's idempotency key as message id.
    assert Webhook(secret).verify(raw, call.headers) == call.body
    assert call.headers["webhook-id"] == f"{view.incident_id}:1"
    assert [(r["attempt"], r["status"]) for r in statuses] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    assert (incident["status"], incident["attempts"]) == ("resolved", 3)


async def _raw_body(body: dict[str, object]) -> bytes:
    from activities.outbound import canonical_json

    return canonical_json(body)


async def test_always_failing_escalates_after_max_attempts_and_ack_then_resolve_closes(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(503)]) as server, CallbackServer() as pager:
        await register_workflow(
            http,
            tenant,
            callback_url=server.url,
            retry_policy=POLICY,
            escalation_webhook_url=pager.url,
        )
        handle = await skipping.start()
        while await _status(handle) != "escalated" or not pager.calls:
            await skipping_env.sleep(60)
        assert len(server.calls) == POLICY["max_attempts"]
        page = pager.calls[0].body
        assert page["event_action"] == "trigger"
        assert page["dedup_key"] == (await handle.query(IncidentWorkflow.status)).incident_id
        assert page["payload"]["severity"] == "error"
        await handle.signal(IncidentWorkflow.acknowledge)
        await _eventually_status(handle, "acknowledged")
        await skipping_env.sleep(7200)
        assert len(pager.calls) == 1  # acknowledged: no further level is paged
        await handle.signal(IncidentWorkflow.resolve)
        result = await _result(handle)
        await keep_history(handle, "escalate_ack_resolve")
    assert result.status == "resolved"
    assert len(server.calls) == POLICY["max_attempts"]


async def _eventually_status(
    handle: WorkflowHandle[IncidentWorkflow, IncidentResult], status: str
) -> None:
    for _ in range(200):
        if await _status(handle) == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"status never became {status}; it is {await _status(handle)}")


async def test_non_retryable_error_escalates_with_zero_retries(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer() as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start(code="AUTH_INVALID")
        await _eventually_status(handle, "escalated")
        view = await handle.query(IncidentWorkflow.status)
        await handle.signal(IncidentWorkflow.kill, KillRequest("test over"))
        await _result(handle)
    assert server.calls == []
    assert view.attempts == 0
    assert view.severity == "critical"


async def test_pause_during_backoff_holds_the_next_attempt_until_resume(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(503), Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start()
        await _eventually_status(handle, "waiting")
        await handle.signal(IncidentWorkflow.pause, OperatorRequest("alice", "vendor incident"))
        await _eventually_status(handle, "paused")
        await skipping_env.sleep(3600)
        assert len(server.calls) == 1
        await handle.signal(IncidentWorkflow.resume, OperatorRequest("bob"))
        result = await _result(handle)
        await keep_history(handle, "pause_resume")
        incident_id = (await handle.query(IncidentWorkflow.status)).incident_id
    assert result.status == "resolved"
    assert len(server.calls) == 2
    recorded = await transitions(settings.plain_database_url, incident_id)
    paused = recorded.index(("paused", "paused by alice: vendor incident"))
    assert recorded[paused + 1] == ("waiting", "resumed by bob")
    assert recorded[paused + 2][0] == "remediating"


async def test_kill_during_backoff_ends_killed_with_no_further_call(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start()
        await _eventually_status(handle, "waiting")
        await handle.signal(IncidentWorkflow.kill, KillRequest("operator said stop"))
        result = await _result(handle)
        await skipping_env.sleep(3600)
    assert result.status == "killed"
    assert result.reason == "operator said stop"
    assert len(server.calls) == 1


async def test_kill_during_a_running_callback_cancels_it_and_records_cancelled(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(200, delay_s=30)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start()
        await _eventually(lambda: len(server.calls) == 1)
        await handle.signal(IncidentWorkflow.kill)
        result = await _result(handle)
        await keep_history(handle, "kill_during_callback")
    assert result.status == "killed"
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        status = await conn.fetchval(
            "SELECT status FROM actions WHERE tenant_id = $1 AND attempt = 1", tenant.id
        )
    finally:
        await conn.close()
    assert status == "cancelled"


async def test_a_success_event_resolves_a_waiting_incident(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=POLICY)
        handle = await skipping.start()
        await _eventually_status(handle, "waiting")
        await handle.signal(
            IncidentWorkflow.events, EventBatch([failure(event_type="step.succeeded", code=None)])
        )
        result = await _result(handle)
    assert result.status == "resolved"
    assert result.reason == "a success event arrived for the failed step"
    assert len(server.calls) == 1
