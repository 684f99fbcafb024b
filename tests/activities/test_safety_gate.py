"""The safety gate activity against real PostgreSQL and Valkey."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from activities.safety import (
    MAX_WAIT_S,
    SafetyGate,
    budget_key,
    rate_key,
    release_slot,
    slot_member,
    spread_wait,
)
from models.db import create_engine
from rules.circuit_breaker import IDLE_TTL_S, CircuitBreaker, breaker_key
from rules.policy import CircuitBreakerSettings, Policies, VendorSettings, load_policies
from rules.rate_limit import RateLimiter
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from vocabulary import CallOutcome, GateVerdict
from workflows.activity_payloads import GateDecision, GateRequest, OutcomeRecord

# A vendor whose breaker opens after two failures for one second, then lets three probes by.
FLAKY = "flaky-vendor"
FLAKY_SETTINGS = VendorSettings(
    circuit_breaker=CircuitBreakerSettings(
        window_size=4,
        minimum_calls=2,
        failure_rate_threshold=0.5,
        open_duration_s=1,
        half_open_probes=3,
    ),
    rate_limit_per_s=3,
    call_timeout_s=5,
)
FLAKY_INTERVAL_US = 1_000_000 // 3
GateFactory = Callable[[int], SafetyGate]


def _policies() -> Policies:
    shipped = load_policies()
    vendors = {**shipped.vendors.vendors, FLAKY: FLAKY_SETTINGS}
    return shipped.model_copy(
        update={"vendors": shipped.vendors.model_copy(update={"vendors": vendors})}
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """A client on the session's Valkey, to count what the gate spent."""
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def make_gate(settings: Settings, redis: Redis) -> AsyncIterator[GateFactory]:
    """Gates with a given hourly budget, sharing one engine and one Redis."""
    engine = create_engine(settings)
    yield lambda calls_per_hour: SafetyGate(
        engine=engine, redis=redis, policies=_policies(), calls_per_hour=calls_per_hour
    )
    await engine.dispose()


@pytest.fixture
async def gate(make_gate: GateFactory) -> SafetyGate:
    """A gate with a tiny hourly budget."""
    return make_gate(2)


@pytest.fixture
async def registered(http: httpx.AsyncClient, tenant: TenantCredentials) -> None:
    """The tenant's `billing-sync` workflow, registered and active."""
    await register_workflow(http, tenant)


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


async def _half_open(redis: Redis, tenant: TenantCredentials) -> str:
    """Open the flaky vendor's breaker with two failures and let its open period pass."""
    key = breaker_key(str(tenant.id), FLAKY)
    for _ in range(2):
        await CircuitBreaker(redis).record(key, FLAKY_SETTINGS.circuit_breaker, success=False)
    await asyncio.sleep(FLAKY_SETTINGS.circuit_breaker.open_duration_s + 0.1)
    return key


async def _spent(redis: Redis, tenant: TenantCredentials) -> tuple[object, ...]:
    """Everything a permit would change: budget used, rate TAT, probes issued."""
    tenant_id = str(tenant.id)
    return (
        await redis.hget(budget_key(tenant_id, "billing-sync"), "used"),
        await redis.get(rate_key(tenant_id, FLAKY)),
        await redis.hget(breaker_key(tenant_id, FLAKY), "probes"),
    )


async def _now_us(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1_000_000 + int(micros)


@pytest.mark.usefixtures("registered")
async def test_permits_until_the_hourly_budget_is_spent(
    gate: SafetyGate, tenant: TenantCredentials
) -> None:
    verdicts = [(await gate.check_gate(_request(tenant))).verdict for _ in range(3)]
    assert verdicts == ["permit", "permit", "wait"]
    waiting = await gate.check_gate(_request(tenant, vendor=None))
    assert waiting.reason == "hourly budget of 2 calls exhausted"
    assert 0 < waiting.wait_s <= 3600 + 1  # until the hour ends, plus at most 1 s of jitter


@pytest.mark.usefixtures("registered")
async def test_half_open_admits_exactly_the_probes_and_waiters_spend_nothing(
    make_gate: GateFactory, tenant: TenantCredentials, redis: Redis
) -> None:
    gates = [make_gate(100), make_gate(100)]  # two workers' gates share the probes
    breaker = await _half_open(redis, tenant)
    started_us = await _now_us(redis)
    decisions = await asyncio.gather(
        *(gates[n % 2].check_gate(_request(tenant, vendor=FLAKY)) for n in range(8))
    )
    permits = [d for d in decisions if d.verdict == "permit"]
    assert len(permits) == 3 and all(d.probe for d in permits)
    held = {d.reason for d in decisions if d.verdict != "permit"}
    assert held == {f"{FLAKY} circuit half-open (probes in flight)"}
    used, tat, probes = await _spent(redis, tenant)
    assert (used, probes) == (b"3", b"3")
    assert isinstance(tat, bytes) and (int(tat) - started_us) // FLAKY_INTERVAL_US == 3
    spent_before = await _spent(redis, tenant)
    for _ in range(5):
        assert (await gates[0].check_gate(_request(tenant, vendor=FLAKY))).verdict == "wait"
    assert await _spent(redis, tenant) == spent_before
    tenant_id = str(tenant.id)
    assert 0 < await redis.ttl(budget_key(tenant_id, "billing-sync")) <= 3600
    assert 0 < await redis.pttl(rate_key(tenant_id, FLAKY)) <= 3 * FLAKY_INTERVAL_US // 1000 + 1000
    assert IDLE_TTL_S - 60 < await redis.ttl(breaker) <= IDLE_TTL_S


@pytest.mark.usefixtures("registered")
async def test_an_open_breaker_names_its_vendor_and_waits_out_the_open_period(
    make_gate: GateFactory, tenant: TenantCredentials, redis: Redis
) -> None:
    key = breaker_key(str(tenant.id), FLAKY)
    for _ in range(2):
        await CircuitBreaker(redis).record(key, FLAKY_SETTINGS.circuit_breaker, success=False)
    decision = await make_gate(100).check_gate(_request(tenant, vendor=FLAKY))
    assert (decision.verdict, decision.reason) == ("wait", f"{FLAKY} circuit open")
    # The open period left (under a second), plus the first wait's spread (0.5-1 s).
    assert 0.5 < decision.wait_s <= FLAKY_SETTINGS.circuit_breaker.open_duration_s + 1


@pytest.mark.usefixtures("registered")
async def test_a_rate_limit_wait_takes_no_probe_and_no_budget(
    make_gate: GateFactory, tenant: TenantCredentials, redis: Redis
) -> None:
    gate, breaker = make_gate(100), await _half_open(redis, tenant)
    limiter, key = RateLimiter(redis), rate_key(str(tenant.id), FLAKY)
    while (await limiter.acquire(key, rate_per_s=3, burst=3)).allowed:
        pass  # another caller spent the vendor's rate
    decision = await gate.check_gate(_request(tenant, vendor=FLAKY))
    assert (decision.verdict, decision.reason) == ("wait", f"{FLAKY} rate limit")
    assert await redis.hget(breaker, "probes") is None
    assert await redis.hget(budget_key(str(tenant.id), "billing-sync"), "used") is None
    await asyncio.sleep(FLAKY_INTERVAL_US / 1_000_000 + 0.05)
    probe = await gate.check_gate(_request(tenant, vendor=FLAKY))
    assert (probe.verdict, probe.probe) == ("permit", True)


@pytest.mark.usefixtures("registered")
async def test_a_budget_wait_takes_no_probe_and_no_rate(
    make_gate: GateFactory, tenant: TenantCredentials, redis: Redis
) -> None:
    assert (await make_gate(1).check_gate(_request(tenant, vendor=None))).verdict == "permit"
    breaker = await _half_open(redis, tenant)
    decision = await make_gate(1).check_gate(_request(tenant, vendor=FLAKY))
    assert (decision.verdict, decision.reason) == ("wait", "hourly budget of 1 calls exhausted")
    assert await redis.get(rate_key(str(tenant.id), FLAKY)) is None
    assert await redis.hget(breaker, "probes") is None
    probe = await make_gate(10).check_gate(_request(tenant, vendor=FLAKY))
    assert (probe.verdict, probe.probe) == ("permit", True)  # the probe was never held


async def test_a_legacy_untagged_forced_open_breaker_still_holds_calls(
    make_gate: GateFactory, tenant: TenantCredentials, redis: Redis, registered: None
) -> None:
    await redis.hset(f"cb:{tenant.id}:{FLAKY}", "state", "forced_open")
    decision = await make_gate(10).check_gate(_request(tenant, vendor=FLAKY))
    assert decision.reason == f"{FLAKY} circuit forced open by an operator"
    assert await redis.ttl(breaker_key(str(tenant.id), FLAKY)) == -1


@pytest.mark.usefixtures("registered")
async def test_attempt_cap_denies(gate: SafetyGate, tenant: TenantCredentials) -> None:
    decision = await gate.check_gate(_request(tenant, attempt=6))
    assert (decision.verdict, decision.kill, decision.suppress) == ("deny", False, False)


async def test_an_active_kill_switch_denies_and_kills_even_without_a_signal(
    gate: SafetyGate, tenant: TenantCredentials, http: httpx.AsyncClient, registered: None
) -> None:
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
    deactivated = await http.patch(
        "/api/v1/workflows/billing-sync", headers=tenant.headers, json={"active": False}
    )
    assert deactivated.status_code == 200
    both = await gate.check_gate(_request(tenant))
    assert (both.kill, both.suppress, both.reason) == (True, False, "kill switch: INC-9")


def _suppressed(reason: str) -> GateDecision:
    return GateDecision(GateVerdict.DENY, reason=reason, suppress=True)


async def test_a_deactivated_workflow_suppresses_and_spends_nothing(
    gate: SafetyGate, tenant: TenantCredentials, http: httpx.AsyncClient, redis: Redis
) -> None:
    await register_workflow(http, tenant)
    assert (await gate.check_gate(_request(tenant))).verdict == "permit"
    deactivated = await http.patch(
        "/api/v1/workflows/billing-sync", headers=tenant.headers, json={"active": False}
    )
    assert deactivated.status_code == 200
    assert await gate.check_gate(_request(tenant)) == _suppressed(
        "workflow 'billing-sync' was deactivated"
    )
    assert await redis.hget(budget_key(str(tenant.id), "billing-sync"), "used") == b"1"


async def test_a_workflow_no_longer_registered_suppresses(
    gate: SafetyGate, tenant: TenantCredentials
) -> None:
    assert await gate.check_gate(_request(tenant, vendor=None)) == _suppressed(
        "workflow 'billing-sync' is no longer registered"
    )


@pytest.mark.usefixtures("registered")
async def test_a_deactivated_tenant_suppresses(
    gate: SafetyGate, tenant: TenantCredentials, settings: Settings
) -> None:
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE tenants SET active = false WHERE id = :id"), {"id": tenant.id}
        )
    await engine.dispose()
    assert await gate.check_gate(_request(tenant)) == _suppressed("tenant was deactivated")


@pytest.mark.usefixtures("registered")
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


@pytest.mark.usefixtures("registered")
async def test_a_tenant_at_its_callback_cap_waits_spending_nothing_until_a_slot_frees(
    make_gate: GateFactory, tenant: TenantCredentials, redis: Redis, settings: Settings
) -> None:
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE tenants SET max_concurrent_callbacks = 2 WHERE id = :id"),
            {"id": tenant.id},
        )
    await engine.dispose()
    gate = make_gate(100)
    calls = [replace(_request(tenant, vendor=None), incident_id=f"inc-{n}") for n in range(3)]
    answers = [await gate.check_gate(call) for call in calls]
    assert [a.verdict for a in answers] == ["permit", "permit", "wait"]
    assert answers[2].reason == "tenant's callbacks in flight at their cap"
    assert await redis.hget(budget_key(str(tenant.id), "billing-sync"), "used") == b"2"
    await release_slot(redis, str(tenant.id), slot_member("inc-0", 1))  # a callback ended
    assert (await gate.check_gate(calls[2])).verdict == "permit"


async def test_an_attempt_is_counted_in_the_breaker_at_most_once(
    gate: SafetyGate, tenant: TenantCredentials
) -> None:
    """The callback counted it, its answer was lost: the workflow's count changes nothing."""
    tenant_id = str(tenant.id)
    failed = OutcomeRecord(tenant_id, FLAKY, CallOutcome.RETRYABLE, attempt_key="inc-1:1")
    assert await gate.count_call(failed) == "closed"
    assert await gate.record_outcome(failed) == "unchanged"  # counted once: still closed
    # Two other attempts' failures (one counted twice) reach minimum_calls and open it.
    other = replace(failed, attempt_key="inc-2:1")
    assert await gate.count_call(other) == "open"
    assert await gate.count_call(other) == "unchanged"
    # Without a key (histories before lean-attempt) every call counts, as before.
    assert await gate.count_call(replace(failed, attempt_key="")) == "open"
