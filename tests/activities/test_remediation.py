"""`call_callback` against real local callbacks and PostgreSQL: the registry names the URL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.records import IncidentRecords
from activities.remediation import NOT_REGISTERED, RemediationActivities
from activities.signing import WebhookSigner
from devstack.http_target import Call, CallbackServer, Reply
from models.db import create_engine
from models.secret_box import SecretBox
from rules.egress import EgressGuard
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import activity_env, failure, store_events
from vocabulary import IncidentStatus, Severity
from workflows.activity_payloads import CallbackOutcome, CallbackRequest, RecordIncidentRequest


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's database."""
    engine = create_engine(settings, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
def signer(settings: Settings, engine: AsyncEngine) -> WebhookSigner:
    """Signs as the worker does, with the tenant's secrets from the session's database."""
    return WebhookSigner(engine=engine, box=SecretBox.from_settings(settings))


@pytest.fixture
async def remediation(
    settings: Settings, engine: AsyncEngine, signer: WebhookSigner
) -> AsyncIterator[RemediationActivities]:
    """The callback activity as the worker builds it."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield RemediationActivities(
            http=client,
            engine=engine,
            guard=EgressGuard.from_settings(settings),
            signer=signer,
        )


async def _request(
    engine: AsyncEngine, tenant: TenantCredentials, callback_url: str, attempt: int = 1
) -> CallbackRequest:
    signature = uuid.uuid4().hex
    workflow_id = f"incident:{tenant.id}:{signature}"
    database_url = engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")
    await store_events(database_url, tenant.id, workflow_id, [failure()])
    incident_id = await IncidentRecords(engine).record_incident(
        RecordIncidentRequest(
            tenant_id=str(tenant.id),
            workflow_id=workflow_id,
            run_id=uuid.uuid4().hex,
            source_workflow="billing-sync",
            step="charge-card",
            signature=signature,
            error_code="VENDOR_TIMEOUT",
            vendor="stripe",
            status=IncidentStatus.REMEDIATING,
            severity=Severity.HIGH,
            category="transient",
            event_count=1,
            attempts=attempt,
            first_seen_at=None,
            last_seen_at=None,
        )
    )
    return CallbackRequest(
        tenant_id=str(tenant.id),
        incident_id=incident_id,
        workflow_id=workflow_id,
        attempt=attempt,
        idempotency_key=f"{incident_id}:{attempt}",
        callback_url=callback_url,
        source_workflow="billing-sync",
        step="charge-card",
        vendor="stripe",
        error_code="VENDOR_TIMEOUT",
        error_message="upstream timed out",
        payload={"invoice": "inv-1"},
        correlation_id="corr-test",
        timeout_s=5,
    )


async def _call(remediation: RemediationActivities, req: CallbackRequest) -> CallbackOutcome:
    return await activity_env(req.workflow_id).run(remediation.call_callback, req)


async def _action(engine: AsyncEngine, key: str) -> tuple[str, dict[str, object]]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, result FROM actions WHERE idempotency_key = :k"), {"k": key}
            )
        ).one()
    return row.status, row.result


async def test_a_503_with_an_http_date_retry_after_carries_the_seconds(
    remediation: RemediationActivities,
    engine: AsyncEngine,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(503)]) as server:

        async def two_seconds_ahead(call: Call) -> None:
            # Dated when the server answers, as a real server would date it.
            ahead = datetime.now(UTC) + timedelta(seconds=2)
            server.script[0].headers["Retry-After"] = format_datetime(ahead, usegmt=True)

        server.on_call = two_seconds_ahead
        await register_workflow(http, tenant, callback_url=server.url)
        outcome = await _call(remediation, await _request(engine, tenant, server.url))
    assert (outcome.outcome, outcome.http_status) == ("retryable", 503)
    # An HTTP-date has whole seconds: "2 s ahead" is between 1 and 2 s away.
    assert outcome.retry_after_s is not None and 0.9 <= outcome.retry_after_s <= 2.0


async def test_the_registered_callback_url_is_called_not_the_planned_one(
    remediation: RemediationActivities,
    engine: AsyncEngine,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer() as planned, CallbackServer() as current:
        await register_workflow(http, tenant, callback_url=planned.url)
        first = await _call(remediation, await _request(engine, tenant, planned.url))
        assert first.outcome == "success"
        changed = await http.patch(
            "/api/v1/workflows/billing-sync",
            headers=tenant.headers,
            json={"callback_url": current.url},
        )
        assert changed.status_code == 200, changed.text
        req = await _request(engine, tenant, planned.url, attempt=2)
        outcome = await _call(remediation, req)
    assert outcome.outcome == "success"
    assert (len(planned.calls), len(current.calls)) == (1, 1)
    assert current.keys() == [req.idempotency_key]
    status, result = await _action(engine, req.idempotency_key)
    assert (status, result["callback_url"]) == ("succeeded", current.url)


async def test_a_workflow_no_longer_registered_is_fatal_without_a_call(
    remediation: RemediationActivities,
    engine: AsyncEngine,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer() as server:
        await register_workflow(http, tenant, callback_url=server.url)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM workflows WHERE tenant_id = :t"), {"t": tenant.id})
        req = await _request(engine, tenant, server.url)
        outcome = await _call(remediation, req)
    assert (outcome.outcome, outcome.http_status, outcome.detail) == ("fatal", None, NOT_REGISTERED)
    assert server.calls == []
    status, result = await _action(engine, req.idempotency_key)
    assert (status, result["detail"]) == ("failed", NOT_REGISTERED)


async def test_a_kill_switch_thrown_after_the_gate_permitted_stops_the_call(
    remediation: RemediationActivities,
    engine: AsyncEngine,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer() as server:
        await register_workflow(http, tenant, callback_url=server.url)
        req = await _request(engine, tenant, server.url)  # the gate has permitted this attempt
        thrown = await http.post(
            "/api/v1/kill-switches",
            headers=tenant.headers,
            json={"workflow": "billing-sync", "vendor": "stripe", "reason": "INC-9"},
        )
        assert thrown.status_code == 201, thrown.text
        outcome = await _call(remediation, req)
    assert (outcome.outcome, outcome.detail) == ("cancelled", "kill switch: INC-9")
    assert server.calls == []
    status, result = await _action(engine, req.idempotency_key)
    assert (status, result["detail"]) == ("cancelled", "kill switch: INC-9")


async def test_the_allow_list_applies_to_the_url_actually_called(
    engine: AsyncEngine,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    signer: WebhookSigner,
    settings: Settings,
) -> None:
    async with CallbackServer() as server, httpx.AsyncClient() as client:
        await register_workflow(http, tenant, callback_url=server.url)  # host 127.0.0.1
        networks = settings.allowed_callback_networks
        only_localhost = EgressGuard(hosts=["localhost"], networks=networks, strict=False)
        remediation = RemediationActivities(
            http=client, engine=engine, guard=only_localhost, signer=signer
        )
        planned = server.url.replace("127.0.0.1", "localhost")
        outcome = await _call(remediation, await _request(engine, tenant, planned))
    refused = "egress refused: host 127.0.0.1 is not on the egress allow-list"
    assert (outcome.outcome, outcome.detail) == ("fatal", refused)
    assert server.calls == []


async def test_a_dry_run_still_reports_a_refused_url_as_refused(
    engine: AsyncEngine,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    signer: WebhookSigner,
    settings: Settings,
) -> None:
    async with CallbackServer() as server, httpx.AsyncClient() as client:
        await register_workflow(http, tenant, callback_url=server.url, mode="dry_run")
        networks = settings.allowed_callback_networks
        only_localhost = EgressGuard(hosts=["localhost"], networks=networks, strict=False)
        remediation = RemediationActivities(
            http=client, engine=engine, guard=only_localhost, signer=signer
        )
        req = await _request(engine, tenant, server.url)
        outcome = await _call(remediation, req)
    refused = "egress refused: host 127.0.0.1 is not on the egress allow-list"
    assert (outcome.outcome, outcome.detail) == ("fatal", refused)
    status, result = await _action(engine, req.idempotency_key)
    assert (status, "would_send" in result) == ("failed", False)
    assert server.calls == []


async def test_the_callback_heartbeats_while_it_waits_for_the_database_before_calling(
    settings: Settings, signer: WebhookSigner, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    # Under load the reads before the request can queue for seconds; silent that long, the
    # attempt would outlive its heartbeat timeout and end without an outcome.
    busy = create_engine(settings, pool_size=1)  # two connections at most
    beats: list[float] = []
    called: list[float] = []
    loop = asyncio.get_running_loop()
    try:
        async with (
            httpx.AsyncClient(follow_redirects=False) as client,
            CallbackServer() as server,
        ):
            remediation = RemediationActivities(
                http=client, engine=busy, guard=EgressGuard.from_settings(settings), signer=signer
            )
            await register_workflow(http, tenant, callback_url=server.url)
            req = await _request(busy, tenant, server.url)

            async def on_call(_call: Call) -> None:
                called.append(loop.time())

            server.on_call = on_call
            env = activity_env(req.workflow_id)
            env.on_heartbeat = lambda *_: beats.append(loop.time())
            async with busy.connect() as one, busy.connect() as two:
                await one.execute(text("SELECT 1")), await two.execute(text("SELECT 1"))
                call = asyncio.create_task(env.run(remediation.call_callback, req))
                await asyncio.sleep(2.5)  # the pool is exhausted: the activity waits for it
            outcome = await call
    finally:
        await busy.dispose()
    assert outcome.outcome == "success"
    assert len([b for b in beats if b < called[0]]) >= 2, (beats, called)
