"""Escalation on the real dev server: pages per incident, and targets that cannot be paged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from devstack.http_target import CallbackServer, Reply
from models.secret_box import SecretBox
from models.stored_secrets import WEBHOOK_URLS
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, digest, failure
from vocabulary import SignalName
from workflows.incident_state import IncidentInput, IncidentResult
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import KillRequest

Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]


async def _eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def _fail(live: IncidentStarter, signature: str) -> Handle:
    """Signal-with-start the incident of `signature` with one failure, as the dispatcher does."""
    tenant_id = str(live.tenant.id)
    key = f"incident:{tenant_id}:{signature}"
    events = [failure()]
    await live.store(events, key=key)
    return await live.client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(
            tenant_id=tenant_id,
            source_workflow="billing-sync",
            signature=signature,
            step="charge-card",
            error_code="VENDOR_TIMEOUT",
            vendor="stripe",
            correlation_id="corr-test",
        ),
        id=key,
        task_queue=live.task_queue,
        start_signal=SignalName.EVENT_DIGEST,
        start_signal_args=[digest(events, key)],
    )


async def _escalate_then_resolve(
    live: IncidentStarter,
    http: httpx.AsyncClient,
    pager: CallbackServer,
    signature: str,
) -> str:
    """Fail `signature`, wait for its page, resolve it through the API; return its incident id."""
    pages = len(pager.calls)
    handle = await _fail(live, signature)
    await _eventually(lambda: len(pager.calls) > pages)
    incident_id = (await handle.query(IncidentWorkflow.status)).incident_id
    resolved = await http.post(
        f"/api/v1/incidents/{incident_id}/resolve", headers=live.tenant.headers
    )
    assert resolved.status_code == 202, resolved.text
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.status == "resolved"
    return incident_id


async def _escalations(http: httpx.AsyncClient, tenant: TenantCredentials) -> list[dict[str, Any]]:
    listed = await http.get("/api/v1/actions", headers=tenant.headers, params={"limit": 100})
    assert listed.status_code == 200, listed.text
    rows = [a for a in listed.json()["items"] if a["action_type"] == "escalate"]
    return sorted(rows, key=lambda a: a["created_at"])


async def test_a_signature_that_recurs_after_resolve_pages_again_with_its_own_audit_row(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    signature = uuid.uuid4().hex
    async with CallbackServer([Reply(422)]) as callback, CallbackServer([Reply(202)]) as pager:
        await register_workflow(
            http, tenant, callback_url=callback.url, escalation_webhook_url=pager.url
        )
        first = await _escalate_then_resolve(live, http, pager, signature)
        second = await _escalate_then_resolve(live, http, pager, signature)
    assert first != second
    assert len(callback.calls) == 2  # one permanent (422) answer per incident
    assert [c.body["dedup_key"] for c in pager.calls] == [first, second]
    assert pager.keys() == [f"{first}:escalate:1", f"{second}:escalate:1"]
    rows = await _escalations(http, tenant)
    assert [(r["incident_id"], r["idempotency_key"], r["status"]) for r in rows] == [
        (first, f"{first}:escalate:1", "succeeded"),
        (second, f"{second}:escalate:1", "succeeded"),
    ]


async def _set_webhook(settings: Settings, tenant: TenantCredentials, url: str) -> None:
    """Store a webhook URL the API would now refuse, as rows registered before it checked."""
    sealed = SecretBox.from_settings(settings).encrypt(url, context=WEBHOOK_URLS.context(tenant.id))
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        await conn.execute(
            "UPDATE workflows SET escalation_webhook_url = $1 WHERE tenant_id = $2",
            sealed,
            tenant.id,
        )
    finally:
        await conn.close()


async def test_a_webhook_url_that_cannot_be_called_is_a_failed_page_not_a_failed_incident(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    async with CallbackServer([Reply(422)]) as callback:
        await register_workflow(http, tenant, callback_url=callback.url)
        await _set_webhook(settings, tenant, "http://127.0.0.1:99999/page")
        handle = await live.start()
        rows: list[dict[str, Any]] = []
        for _ in range(300):
            rows = await _escalations(http, tenant)
            if rows and rows[0]["status"] != "running":
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # time for the workflow to take the outcome
        view = await handle.query(IncidentWorkflow.status)
        running = (await handle.describe()).status
        await handle.signal(IncidentWorkflow.kill, KillRequest("test over"))
        result = await asyncio.wait_for(handle.result(), 30)
    [row] = rows
    assert row["status"] == "failed"
    assert row["result"]["delivered"] is False
    assert "egress refused: is not a valid URL (Port out of range" in row["result"]["detail"]
    assert (view.status, view.escalation_level) == ("escalated", 1)
    assert running == WorkflowExecutionStatus.RUNNING
    assert result.status == "killed"
