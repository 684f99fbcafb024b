"""The safety gate activity against real PostgreSQL and Valkey."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from activities.safety import MAX_WAIT_S, SafetyGate, spread_wait
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
    assert 0 < waiting.wait_s <= 3600 + 1  # until the hour ends, plus at most 1 s of jitter


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


def test_repeated_waits_back_off_with_jitter_up_to_a_minute() -> None:
    rng = random.Random(7)
    waits = [spread_wait(0, n, rng) for n in range(12)]
    assert 0.5 <= waits[0] <= 1 and 1 <= waits[1] <= 2 and 4 <= waits[3] <= 8
    assert all(MAX_WAIT_S / 2 <= w <= MAX_WAIT_S for w in waits[6:])
    spread = {spread_wait(0, 8, rng) for _ in range(100)}
    assert max(spread) - min(spread) > MAX_WAIT_S / 4  # a crowd of waiters wakes spread out


def test_a_known_minimum_wait_is_never_cut_short() -> None:
    rng = random.Random(7)
    assert all(28 < spread_wait(28, n, rng) <= 28 + MAX_WAIT_S for n in range(12))
