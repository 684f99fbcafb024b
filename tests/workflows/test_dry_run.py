"""Dry-run workflows: the whole lifecycle runs, every call and page is recorded, none is sent."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.callback_target import CallbackTarget, callback_body
from activities.dry_run import NOT_CALLED, NOT_SENT, SIGNED_AT_SEND_TIME, placeholder_signature
from activities.signing import signature_headers
from devstack.http_target import CallbackServer, Reply
from devstack.process import free_port
from models.signing import hmac_secret_of
from rules.circuit_breaker import breaker_key
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, activity_env
from tests.utils.signatures import first_secret
from worker import build_worker, metrics_runtime
from workflows.activity_payloads import CallbackRequest
from workflows.converter import DATA_CONVERTER
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow

THREE_ATTEMPTS = {
    "max_attempts": 3,
    "initial_interval_s": 30,
    "multiplier": 2,
    "max_interval_s": 120,
    "jitter": 0.0,
}
Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]


async def _retries(settings: Settings, tenant: TenantCredentials) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT attempt, status, result::text AS result FROM actions"
            " WHERE tenant_id = $1 AND action_type = 'retry' ORDER BY attempt",
            tenant.id,
        )
        return rows
    finally:
        await conn.close()


def _expected_body(handle: Handle, incident_id: str, attempt: int) -> Any:
    """What a live callback of this attempt sends, built by the code that sends it."""
    request = CallbackRequest(
        tenant_id="",
        incident_id=incident_id,
        workflow_id=handle.id,
        attempt=attempt,
        idempotency_key=f"{incident_id}:{attempt}",
        callback_url="",
        source_workflow="billing-sync",
        step="charge-card",
        vendor="stripe",
        error_code="VENDOR_TIMEOUT",
        error_message=None,
        payload=None,
        correlation_id="corr-test",
        timeout_s=10,
    )
    target = CallbackTarget("", message="upstream timed out", payload={"invoice": "inv-1"})
    return json.loads(activity_env(handle.id).run(callback_body, request, target))


async def _breaker_window(settings: Settings, tenant: TenantCredentials) -> str:
    redis = Redis.from_url(settings.redis_url)
    try:
        window = await redis.hget(breaker_key(str(tenant.id), "stripe"), "window")
    finally:
        await redis.aclose()
    return window.decode() if isinstance(window, bytes) else str(window or "")


async def test_a_dry_run_retries_then_escalates_and_sends_nothing(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(200)]) as server, CallbackServer() as pager:
        await register_workflow(
            http,
            tenant,
            callback_url=server.url,
            retry_policy=THREE_ATTEMPTS,
            escalation_webhook_url=pager.url,
            mode="dry_run",
        )
        handle = await skipping.start()
        for _ in range(200):
            view = await handle.query(IncidentWorkflow.status)
            if view.status == "escalated" and "L1" in (view.latest_action or ""):
                break
            await skipping_env.sleep(30)
        listed = await http.get(
            "/api/v1/actions", headers=tenant.headers, params={"incident_id": view.incident_id}
        )
        await handle.signal(IncidentWorkflow.kill)
        await handle.result()
        assert (server.calls, pager.calls) == ([], [])
    assert view.status == "escalated" and NOT_SENT in (view.latest_action or "")
    retries = await _retries(settings, tenant)
    assert [(row["attempt"], row["status"]) for row in retries] == [
        (attempt, "skipped_dry_run") for attempt in (1, 2, 3)
    ]
    for row in retries:
        result = json.loads(row["result"])
        sent = result["would_send"]
        assert (result["outcome"], result["detail"]) == ("retryable", NOT_CALLED)
        assert sent["url"] == server.url
        assert sent["body"] == _expected_body(handle, view.incident_id, row["attempt"])
        assert sent["headers"]["Idempotency-Key"] == f"{view.incident_id}:{row['attempt']}"
        assert sent["headers"]["webhook-signature"] == SIGNED_AT_SEND_TIME
        assert sent["headers"]["X-AWFDRS-Signature"] == SIGNED_AT_SEND_TIME
    assert await _breaker_window(settings, tenant) == ""  # nothing failed at the vendor
    shown = listed.json()["items"]
    assert {(a["action_type"], a["status"]) for a in shown} == {
        ("retry", "skipped_dry_run"),
        ("escalate", "skipped_dry_run"),
    }
    (page,) = [a for a in shown if a["action_type"] == "escalate"]
    assert page["result"]["detail"] == NOT_SENT
    assert page["result"]["would_send"]["event"] == "trigger"
    secret = await first_secret(settings, tenant)
    assert secret not in listed.text and hmac_secret_of(secret) not in listed.text
    assert secret.removeprefix("whsec_") not in listed.text and "v1," not in listed.text


async def test_switching_to_live_applies_from_the_next_attempt(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(200)]) as server:
        await register_workflow(
            http, tenant, callback_url=server.url, retry_policy=THREE_ATTEMPTS, mode="dry_run"
        )
        handle = await skipping.start()
        for _ in range(200):  # time stands still until the test waits on the result
            if [row["status"] for row in await _retries(settings, tenant)] == ["skipped_dry_run"]:
                break
            await asyncio.sleep(0.05)
        switched = await http.patch(
            "/api/v1/workflows/billing-sync", headers=tenant.headers, json={"mode": "live"}
        )
        assert switched.status_code == 200 and switched.json()["mode"] == "live"
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.status == "resolved"
    retries = await _retries(settings, tenant)
    assert [(row["attempt"], row["status"]) for row in retries] == [
        (1, "skipped_dry_run"),
        (2, "succeeded"),
    ]
    (call,) = server.calls
    would_send = json.loads(retries[0]["result"])["would_send"]
    assert call.body == {**would_send["body"], "attempt": 2}
    assert call.headers["idempotency-key"].endswith(":2")
    assert await _breaker_window(settings, tenant) == "1"  # only the live call counted


async def test_mode_is_validated_listed_and_cannot_be_removed(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    refused = await http.post(
        "/api/v1/workflows",
        headers=tenant.headers,
        json={"name": "billing-sync", "callback_url": "http://127.0.0.1:9/cb", "mode": "shadow"},
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "mode" in refused.text
    created = await register_workflow(http, tenant)
    assert created["mode"] == "live"
    url = "/api/v1/workflows/billing-sync"
    for bad in ("DRY_RUN", None, 1):
        patched = await http.patch(url, headers=tenant.headers, json={"mode": bad})
        assert patched.status_code == 422 and "mode" in patched.text, patched.text
    changed = await http.patch(url, headers=tenant.headers, json={"mode": "dry_run"})
    assert changed.status_code == 200 and changed.json()["mode"] == "dry_run"
    listed = await http.get("/api/v1/workflows", headers=tenant.headers)
    assert [w["mode"] for w in listed.json()] == ["dry_run"]


async def test_skipped_calls_are_counted_on_the_worker_metrics(
    settings: Settings,
    activities: Sequence[Callable[..., Any]],
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    client = await Client.connect(
        settings.temporal_address, data_converter=DATA_CONVERTER, runtime=metrics_runtime(address)
    )
    quick = {**THREE_ATTEMPTS, "max_attempts": 2, "initial_interval_s": 1, "max_interval_s": 1}
    queue = f"dry-run-{uuid.uuid4().hex}"
    async with CallbackServer() as server, build_worker(client, activities, queue):
        await register_workflow(
            http, tenant, callback_url=server.url, retry_policy=quick, mode="dry_run"
        )
        handle = await IncidentStarter(client, tenant, queue, settings.plain_database_url).start()
        for _ in range(150):
            view = await handle.query(IncidentWorkflow.status)
            if view.status == "escalated" and len(await _retries(settings, tenant)) == 2:
                break
            await asyncio.sleep(0.2)
        await handle.signal(IncidentWorkflow.kill)
        await asyncio.wait_for(handle.result(), 30)
        await asyncio.sleep(1.5)  # the exporter refreshes periodically
        async with httpx.AsyncClient() as scraper:
            text = (await scraper.get(f"http://{address}/metrics")).text
    counted = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "awfdrs_actions_total" and sample.labels.get("type") == "retry"
    }
    assert counted == {"skipped_dry_run": 2}
    assert server.calls == []


def test_the_placeholder_stands_for_every_signature_header() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    signed = signature_headers([secret], message_id="inc:1", timestamp=1, body=b"{}")
    shown = placeholder_signature("inc:1")
    assert shown.keys() == signed.keys()
    assert shown.pop("webhook-id") == signed["webhook-id"]
    assert set(shown.values()) == {SIGNED_AT_SEND_TIME}
