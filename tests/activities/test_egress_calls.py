"""Call time runs the egress guard: refused targets are failed actions and never see a
connection, a rebinding name is called at the address vetted, and only a short, inert excerpt
of a response is kept."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.escalation import EscalationActivities
from activities.records import IncidentRecords
from activities.remediation import RemediationActivities
from activities.signing import WebhookSigner
from devstack.http_target import Reply
from models.db import create_engine
from models.secret_box import SecretBox
from rules.egress import EgressGuard
from rules.targets import EscalationLevel, EscalationPolicy
from settings import Settings, load_settings
from tests.conftest import TenantCredentials
from tests.utils.egress import REFUSED, ScriptedResolver, ServerOn, make_guard, resolving_name
from tests.utils.incidents import activity_env, failure, store_events
from vocabulary import IncidentStatus, PageSeverity, Severity
from workflows.activity_payloads import (
    CallbackOutcome,
    CallbackRequest,
    EscalationOutcome,
    EscalationRequest,
    RecordIncidentRequest,
)
from workflows.incident_state import EscalationStep

IDS = [host for host, _, _ in REFUSED]


def _box() -> SecretBox:
    """The suite's key, as every process of the suite reads it (AWFDRS_SECRET_KEY)."""
    return SecretBox.from_settings(load_settings())


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's database."""
    engine = create_engine(settings, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def server() -> AsyncIterator[ServerOn]:
    """A callback target on 127.0.0.1 that counts every connection it accepts."""
    async with ServerOn("127.0.0.1", [Reply(200)]) as target:
        yield target


async def _incident(engine: AsyncEngine, tenant: TenantCredentials, callback_url: str) -> str:
    """Register `callback_url` as stored before (the API would refuse it) and open an incident."""
    workflow_id = f"incident:{tenant.id}:{uuid.uuid4().hex}"
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO workflows (id, tenant_id, name, description, callback_url)"
                " VALUES (gen_random_uuid(), :t, 'billing-sync', '', :url)"
                " ON CONFLICT (tenant_id, name) DO UPDATE SET callback_url = excluded.callback_url"
            ),
            {"t": tenant.id, "url": callback_url},
        )
    database_url = engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")
    await store_events(database_url, tenant.id, workflow_id, [failure()])
    return workflow_id


async def _record(engine: AsyncEngine, tenant: TenantCredentials, workflow_id: str) -> str:
    return await IncidentRecords(engine).record_incident(
        RecordIncidentRequest(
            tenant_id=str(tenant.id),
            workflow_id=workflow_id,
            run_id=uuid.uuid4().hex,
            source_workflow="billing-sync",
            step="charge-card",
            signature=workflow_id.rsplit(":", 1)[-1],
            error_code="VENDOR_TIMEOUT",
            vendor="stripe",
            status=IncidentStatus.REMEDIATING,
            severity=Severity.HIGH,
            category="transient",
            event_count=1,
            attempts=1,
            first_seen_at=None,
            last_seen_at=None,
        )
    )


async def _call(
    engine: AsyncEngine,
    tenant: TenantCredentials,
    guard: EgressGuard,
    *,
    workflow_id: str,
    attempt: int = 1,
) -> tuple[CallbackOutcome, dict[str, object]]:
    """Run `call_callback` once; return its outcome and its action row's result."""
    incident_id = await _record(engine, tenant, workflow_id)
    key = f"{incident_id}:{attempt}"
    req = CallbackRequest(
        tenant_id=str(tenant.id),
        incident_id=incident_id,
        workflow_id=workflow_id,
        attempt=attempt,
        idempotency_key=key,
        callback_url="http://planned.invalid/cb",
        source_workflow="billing-sync",
        step="charge-card",
        vendor="stripe",
        error_code="VENDOR_TIMEOUT",
        error_message=None,
        payload=None,
        correlation_id="corr-test",
        timeout_s=5,
    )
    async with httpx.AsyncClient(follow_redirects=False) as http:
        signer = WebhookSigner(engine=engine, box=_box())
        activities = RemediationActivities(http=http, engine=engine, guard=guard, signer=signer)
        outcome = await activity_env(workflow_id).run(activities.call_callback, req)
    async with engine.connect() as conn:
        query = text("SELECT status, result FROM actions WHERE idempotency_key = :k")
        row = (await conn.execute(query, {"k": key})).one()
    assert row.status == ("succeeded" if outcome.outcome == "success" else "failed")
    return outcome, row.result


@pytest.mark.parametrize("by_name", [False, True], ids=["address", "name"])
@pytest.mark.parametrize(("host", "reason", "answer"), REFUSED, ids=IDS)
async def test_a_refused_callback_is_a_failed_action_and_opens_no_connection(
    engine: AsyncEngine,
    tenant: TenantCredentials,
    server: ServerOn,
    by_name: bool,
    host: str,
    reason: str,
    answer: str,
) -> None:
    resolver = ScriptedResolver({resolving_name(IDS.index(host)): [[answer]]})
    target = resolving_name(IDS.index(host)) if by_name else host
    url = f"http://{target}:{server.port}/cb"  # the loopback cases point at the live server
    workflow_id = await _incident(engine, tenant, url)
    outcome, result = await _call(engine, tenant, make_guard(resolver), workflow_id=workflow_id)
    assert (outcome.outcome, outcome.http_status) == ("fatal", None)
    assert outcome.detail.startswith("egress refused: ")
    assert reason.split(" address ")[0] in outcome.detail
    assert result["detail"] == outcome.detail
    assert server.connections == 0


async def test_inside_an_allowed_network_the_same_name_is_called(
    engine: AsyncEngine, tenant: TenantCredentials, server: ServerOn
) -> None:
    name = resolving_name(0)  # answers 127.0.0.1
    resolver = ScriptedResolver({name: [["127.0.0.1"]]})
    guard = make_guard(resolver, networks=["127.0.0.0/8"])
    workflow_id = await _incident(engine, tenant, f"http://{name}:{server.port}/cb")
    outcome, _ = await _call(engine, tenant, guard, workflow_id=workflow_id)
    assert outcome.outcome == "success"
    assert [call.headers["host"] for call in server.calls] == [f"{name}:{server.port}"]


async def test_a_rebinding_name_is_called_at_the_vetted_address_then_refused(
    engine: AsyncEngine, tenant: TenantCredentials
) -> None:
    name = "rebind.egress.test"
    # First answer inside the allowed network, every later one outside it.
    resolver = ScriptedResolver({name: [["127.0.0.2"], ["127.0.0.3"]]})
    guard = make_guard(resolver, networks=["127.0.0.2/32"])
    async with ServerOn("127.0.0.2") as vetted, ServerOn("127.0.0.3", port=vetted.port) as rebound:
        workflow_id = await _incident(engine, tenant, f"http://{name}:{vetted.port}/cb")
        first, _ = await _call(engine, tenant, guard, workflow_id=workflow_id)
        assert resolver.lookups == [name]  # httpx never resolved it again (nor could it)
        second, result = await _call(engine, tenant, guard, workflow_id=workflow_id, attempt=2)
    assert first.outcome == "success"
    assert [call.headers["host"] for call in vetted.calls] == [f"{name}:{vetted.port}"]
    assert second.outcome == "fatal"
    assert result["detail"] == f"egress refused: host {name} resolves to loopback address 127.0.0.3"
    assert (len(vetted.calls), rebound.connections) == (1, 0)


async def test_a_dns_failure_at_call_time_is_retryable(
    engine: AsyncEngine, tenant: TenantCredentials
) -> None:
    workflow_id = await _incident(engine, tenant, "https://gone.egress.test/cb")
    outcome, _ = await _call(
        engine, tenant, make_guard(ScriptedResolver()), workflow_id=workflow_id
    )
    assert outcome.outcome == "retryable"
    assert "host gone.egress.test does not resolve" in outcome.detail


HOSTILE_BODY = "\x1b[31mroot:x:0:0\n\ttoken=s3cr3t\x00 é☃" + "A" * 5000


async def test_an_action_keeps_the_status_and_a_short_sanitised_excerpt(
    engine: AsyncEngine, tenant: TenantCredentials, http: httpx.AsyncClient
) -> None:
    guard = make_guard(ScriptedResolver(), networks=["127.0.0.0/8"])
    async with ServerOn("127.0.0.1", [Reply(422, body=HOSTILE_BODY)]) as server:
        workflow_id = await _incident(engine, tenant, server.url)
        outcome, result = await _call(engine, tenant, guard, workflow_id=workflow_id)
    # Control characters and non-ASCII become `?`, whitespace runs one space, 100 at most.
    expected = "HTTP 422: " + ("?[31mroot:x:0:0 token=s3cr3t? ??" + "A" * 100)[:97] + "..."
    assert (outcome.outcome, outcome.http_status, outcome.detail) == ("fatal", 422, expected)
    listed = await http.get("/api/v1/actions", headers=tenant.headers, params={"limit": 10})
    [served] = [a for a in listed.json()["items"] if a["action_type"] == "retry"]
    assert served["result"]["detail"] == expected == result["detail"]


def _escalation(
    engine: AsyncEngine, guard: EgressGuard, http: httpx.AsyncClient, webhook: str
) -> EscalationActivities:
    policy = EscalationPolicy(
        levels=(
            EscalationLevel.model_validate(
                {"name": "on-call", "webhook": webhook, "ack_timeout_s": 900}
            ),
        )
    )
    box = _box()
    return EscalationActivities(
        http=http,
        engine=engine,
        guard=guard,
        ui_base_url=None,
        namespace="default",
        policy=policy,
        signer=WebhookSigner(engine=engine, box=box),
        box=box,
    )


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        (resolving_name(IDS.index("169.254.169.254")), "link-local address 169.254.169.254"),
        (resolving_name(0), "loopback address 127.0.0.1"),
        ("0x7f.1", "loopback address 127.0.0.1"),
    ],
)
async def test_a_refused_page_is_a_failed_action_and_opens_no_connection(
    engine: AsyncEngine, tenant: TenantCredentials, server: ServerOn, host: str, reason: str
) -> None:
    resolver = ScriptedResolver(
        {
            resolving_name(IDS.index("169.254.169.254")): [["169.254.169.254"]],
            resolving_name(0): [["127.0.0.1"]],
        }
    )
    workflow_id = await _incident(engine, tenant, "http://127.0.0.1:9/cb")
    incident_id = await _record(engine, tenant, workflow_id)
    req = EscalationRequest(
        tenant_id=str(tenant.id),
        incident_id=incident_id,
        workflow_id=workflow_id,
        level=1,
        step=EscalationStep("on-call", None, 900, PageSeverity.ERROR),
        summary="billing-sync VENDOR_TIMEOUT at stripe",
        source_workflow="billing-sync",
        error_code="VENDOR_TIMEOUT",
        vendor="stripe",
        event_count=1,
        attempts=3,
        correlation_id="corr-test",
    )
    async with httpx.AsyncClient() as http:
        escalation = _escalation(
            engine, make_guard(resolver), http, f"http://{host}:{server.port}/page"
        )
        outcome: EscalationOutcome = await activity_env(workflow_id).run(
            escalation.send_escalation, req
        )
    assert outcome.delivered is False
    assert outcome.detail.startswith("egress refused: ") and reason in outcome.detail
    assert server.connections == 0
