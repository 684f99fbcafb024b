"""`send_escalation` against real local webhooks and PostgreSQL: failures are failed actions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.escalation import EscalationActivities
from activities.records import IncidentRecords
from activities.signing import WebhookSigner
from devstack.http_target import CallbackServer, Reply
from devstack.process import free_port
from models.db import create_engine
from models.secret_box import SecretBox
from models.stored_secrets import WEBHOOK_URLS
from rules.egress import EgressGuard
from rules.policy import load_policies
from settings import Settings, load_settings
from tests.conftest import TenantCredentials
from tests.utils.incidents import activity_env, failure, store_events
from vocabulary import IncidentStatus, PageSeverity, Severity
from workflows.activity_payloads import EscalationOutcome, EscalationRequest, RecordIncidentRequest
from workflows.incident_state import EscalationStep


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's database."""
    engine = create_engine(settings, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def escalation(
    settings: Settings, engine: AsyncEngine
) -> AsyncIterator[EscalationActivities]:
    """The escalation activities as the worker builds them."""
    box = SecretBox.from_settings(settings)
    async with httpx.AsyncClient(follow_redirects=False) as http:
        yield EscalationActivities(
            http=http,
            engine=engine,
            guard=EgressGuard.from_settings(settings),
            ui_base_url="http://ui.test",
            namespace="default",
            policy=load_policies(None).escalation,
            signer=WebhookSigner(engine=engine, box=box),
            box=box,
        )


async def _incident(engine: AsyncEngine, tenant: TenantCredentials, workflow_id: str) -> str:
    """A new incident row (a new run) of the given incident workflow ID."""
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
            status=IncidentStatus.ESCALATED,
            severity=Severity.HIGH,
            category="transient",
            event_count=1,
            attempts=3,
            first_seen_at=None,
            last_seen_at=None,
        )
    )


def _sealed(tenant: TenantCredentials, url: str | None) -> str | None:
    """The URL as the registry stores it, sealed with the suite's key."""
    box = SecretBox.from_settings(load_settings())
    return url and box.encrypt(url, context=WEBHOOK_URLS.context(tenant.id))


def _request(
    tenant: TenantCredentials, incident_id: str, workflow_id: str, webhook_url: str | None
) -> EscalationRequest:
    return EscalationRequest(
        tenant_id=str(tenant.id),
        incident_id=incident_id,
        workflow_id=workflow_id,
        level=1,
        step=EscalationStep("on-call", webhook_url, 900, PageSeverity.ERROR),
        summary="billing-sync VENDOR_TIMEOUT at stripe: all 3 attempts failed",
        source_workflow="billing-sync",
        error_code="VENDOR_TIMEOUT",
        vendor="stripe",
        event_count=1,
        attempts=3,
        correlation_id="corr-test",
    )


async def _escalate(
    escalation: EscalationActivities,
    engine: AsyncEngine,
    tenant: TenantCredentials,
    *,
    webhook_url: str | None,
    workflow_id: str | None = None,
) -> tuple[EscalationOutcome, str]:
    workflow_id = workflow_id or f"incident:{tenant.id}:{uuid.uuid4().hex}"
    database_url = engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")
    await store_events(database_url, tenant.id, workflow_id, [failure()])
    incident_id = await _incident(engine, tenant, workflow_id)
    # Level 1 pages the workflow's registered webhook, whatever the request says; written
    # directly, since registration refuses the unusable URLs some cases need.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO workflows (id, tenant_id, name, description, callback_url,"
                " escalation_webhook_url) VALUES (gen_random_uuid(), :t, 'billing-sync', '',"
                " 'http://127.0.0.1:9/cb', :url) ON CONFLICT (tenant_id, name)"
                " DO UPDATE SET escalation_webhook_url = excluded.escalation_webhook_url"
            ),
            {"t": tenant.id, "url": _sealed(tenant, webhook_url)},
        )
    request = _request(tenant, incident_id, workflow_id, "http://planned.invalid/page")
    outcome = await activity_env(workflow_id).run(escalation.send_escalation, request)
    return outcome, incident_id


async def _rows(engine: AsyncEngine, tenant: TenantCredentials) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT incident_id::text AS incident_id, idempotency_key, status, result, "
                "finished_at IS NOT NULL AS finished FROM actions "
                "WHERE tenant_id = :t AND action_type = 'escalate' ORDER BY created_at"
            ),
            {"t": tenant.id},
        )
        return [dict(row) for row in rows.mappings()]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("down", "ConnectError"),
        ("500", "HTTP 500"),
        ("http://127.0.0.1:99999/page", "egress refused: is not a valid URL (Port out of range"),
        ("http://127.0.0.1:abc/page", "egress refused: is not a valid URL (Port could not"),
        ("http://[::1/page", "egress refused: is not a valid URL (Invalid IPv6 URL)"),
        ("http://169.254.169.254/page", "egress refused: link-local address 169.254.169.254"),
        (None, "no escalation webhook configured"),
    ],
)
async def test_a_page_that_cannot_be_delivered_is_a_failed_action(
    escalation: EscalationActivities,
    engine: AsyncEngine,
    tenant: TenantCredentials,
    target: str | None,
    reason: str,
) -> None:
    async with CallbackServer([Reply(500)]) as failing:
        url = {"down": f"http://127.0.0.1:{free_port()}/page", "500": failing.url}.get(
            target or "", target
        )
        outcome, incident_id = await _escalate(escalation, engine, tenant, webhook_url=url)
    assert outcome.delivered is False
    assert reason in outcome.detail
    [row] = await _rows(engine, tenant)
    assert (row["incident_id"], row["status"], row["finished"]) == (incident_id, "failed", True)
    assert row["result"] == {"delivered": False, "detail": outcome.detail}
    assert len(failing.calls) == (1 if target == "500" else 0)


async def test_a_delivered_page_is_keyed_by_its_incident(
    escalation: EscalationActivities, engine: AsyncEngine, tenant: TenantCredentials
) -> None:
    async with CallbackServer([Reply(202)]) as pager:
        outcome, incident_id = await _escalate(escalation, engine, tenant, webhook_url=pager.url)
    assert (outcome.delivered, outcome.detail) == (True, "HTTP 202")
    [call] = pager.calls
    assert call.body["dedup_key"] == incident_id
    assert call.headers["idempotency-key"] == f"{incident_id}:escalate:1"
    [row] = await _rows(engine, tenant)
    assert (row["idempotency_key"], row["status"]) == (f"{incident_id}:escalate:1", "succeeded")


async def test_a_recurring_signature_pages_again_with_its_own_row(
    escalation: EscalationActivities, engine: AsyncEngine, tenant: TenantCredentials
) -> None:
    workflow_id = f"incident:{tenant.id}:{uuid.uuid4().hex}"
    async with CallbackServer([Reply(202)]) as pager:
        first, first_id = await _escalate(
            escalation, engine, tenant, webhook_url=pager.url, workflow_id=workflow_id
        )
        second, second_id = await _escalate(
            escalation, engine, tenant, webhook_url=pager.url, workflow_id=workflow_id
        )
    assert first.delivered and second.delivered
    assert first_id != second_id
    assert [c.body["dedup_key"] for c in pager.calls] == [first_id, second_id]
    assert len({c.headers["idempotency-key"] for c in pager.calls}) == 2
    rows = await _rows(engine, tenant)
    assert [(r["incident_id"], r["status"]) for r in rows] == [
        (first_id, "succeeded"),
        (second_id, "succeeded"),
    ]
