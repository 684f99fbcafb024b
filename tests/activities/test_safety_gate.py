"""The safety gate activity against real PostgreSQL and Valkey."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from activities.safety import SafetyGate
from models.db import create_engine
from rules.policy import load_policies
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from workflows.incident_types import GateRequest


@pytest.fixture
async def gate(settings: Settings) -> AsyncIterator[SafetyGate]:
    """A gate with a tiny hourly budget."""
    engine = create_engine(settings)
    redis = Redis.from_url(settings.redis_url)
    yield SafetyGate(engine=engine, redis=redis, policies=load_policies(), calls_per_hour=2)
    await redis.aclose()
    await engine.dispose()


def _request(
    tenant: TenantCredentials, attempt: int = 1, vendor: str | None = "stripe"
) -> GateRequest:
    return GateRequest(
        tenant_id=str(tenant.id),
        incident_id="i",
        source_workflow="billing-sync",
        vendor=vendor,
        attempt=attempt,
        max_attempts=5,
    )


async def test_permits_until_the_hourly_budget_is_spent(
    gate: SafetyGate, tenant: TenantCredentials
) -> None:
    verdicts = [(await gate.check_gate(_request(tenant))).verdict for _ in range(3)]
    assert verdicts == ["permit", "permit", "wait"]
    waiting = await gate.check_gate(_request(tenant, vendor=None))
    assert waiting.reason == "hourly budget of 2 calls exhausted"
    assert 0 < waiting.wait_s <= 3600


async def test_attempt_cap_denies(gate: SafetyGate, tenant: TenantCredentials) -> None:
    decision = await gate.check_gate(_request(tenant, attempt=6))
    assert (decision.verdict, decision.kill) == ("deny", False)


async def test_an_active_kill_switch_denies_and_kills_even_without_a_signal(
    gate: SafetyGate, tenant: TenantCredentials, http: httpx.AsyncClient
) -> None:
    await register_workflow(http, tenant)
    created = await http.post(
        "/api/v1/kill-switches",
        headers=tenant.headers,
        json={"workflow": "billing-sync", "vendor": "stripe", "reason": "INC-9"},
    )
    assert created.status_code == 201
    decision = await gate.check_gate(_request(tenant))
    assert (decision.verdict, decision.kill, decision.reason) == (
        "deny",
        True,
        "kill switch: INC-9",
    )
    other_vendor = await gate.check_gate(_request(tenant, vendor="sendgrid"))
    assert other_vendor.verdict == "permit"


async def test_unreachable_redis_means_wait(settings: Settings, tenant: TenantCredentials) -> None:
    engine = create_engine(settings)
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    gate = SafetyGate(engine=engine, redis=redis, policies=load_policies(), calls_per_hour=10)
    decision = await gate.check_gate(_request(tenant))
    await redis.aclose()
    await engine.dispose()
    assert decision.verdict == "wait"
    assert "redis" in decision.reason
