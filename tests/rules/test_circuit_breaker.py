"""The circuit breaker over real Valkey: half-open probes shared by 8 processes, key expiry."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid

from redis.asyncio import Redis

from rules.circuit_breaker import IDLE_TTL_S, CircuitBreaker, breaker_key
from rules.policy import CircuitBreakerSettings

SETTINGS = CircuitBreakerSettings(
    window_size=10,
    minimum_calls=4,
    failure_rate_threshold=0.5,
    open_duration_s=3.0,
    half_open_probes=2,
)


def _key() -> str:
    return breaker_key(str(uuid.uuid4()), "stripe")


async def _open(breaker: CircuitBreaker, key: str) -> None:
    for _ in range(4):
        assert (await breaker.acquire(key, SETTINGS, probe_lease_s=30)).allowed
        await breaker.record(key, SETTINGS, success=False)
    assert (await breaker.state(key))[0] == "open"


def _probe_worker(
    *, url: str, key: str, vendor_ok: bool, barrier: object, results: multiprocessing.Queue[int]
) -> None:
    async def run() -> int:
        redis = Redis.from_url(url)
        breaker = CircuitBreaker(redis)
        barrier.wait()  # type: ignore[attr-defined]
        permit = await breaker.acquire(key, SETTINGS, probe_lease_s=30)
        if permit.allowed:  # this call "reaches the vendor"
            await asyncio.sleep(0.05)
            await breaker.record(key, SETTINGS, success=vendor_ok)
        await redis.aclose()
        return int(permit.allowed)

    results.put(asyncio.run(run()))


def _probe_round(url: str, key: str, vendor_ok: bool) -> int:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(8)
    results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    workers = [
        context.Process(
            target=_probe_worker,
            kwargs={
                "url": url,
                "key": key,
                "vendor_ok": vendor_ok,
                "barrier": barrier,
                "results": results,
            },
        )
        for _ in range(8)
    ]
    for worker in workers:
        worker.start()
    reached: int = sum(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    return reached


async def test_half_open_admits_exactly_the_probes_and_success_closes(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    breaker, key = CircuitBreaker(redis), _key()
    await _open(breaker, key)
    assert not (await breaker.acquire(key, SETTINGS, probe_lease_s=30)).allowed
    await asyncio.sleep(3.1)
    assert await asyncio.to_thread(_probe_round, redis_url, key, True) == 2
    assert (await breaker.state(key))[0] == "closed"
    await redis.aclose()


async def test_a_failed_probe_reopens(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    breaker, key = CircuitBreaker(redis), _key()
    await _open(breaker, key)
    await asyncio.sleep(3.1)
    assert await asyncio.to_thread(_probe_round, redis_url, key, False) == 2
    state, remaining = await breaker.state(key)
    assert state == "open" and remaining > 0
    assert not (await breaker.acquire(key, SETTINGS, probe_lease_s=30)).allowed
    await redis.aclose()


async def test_minimum_calls_and_threshold_follow_resilience4j(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    breaker, key = CircuitBreaker(redis), _key()
    for _ in range(3):  # 3/3 failures, but below minimum_calls=4: stays closed
        await breaker.record(key, SETTINGS, success=False)
    assert (await breaker.state(key))[0] == "closed"
    await breaker.record(key, SETTINGS, success=True)  # 3/4 = 75% ≥ 50% → open
    assert (await breaker.state(key))[0] == "open"
    await breaker.force(key, "closed")
    for outcome in (True, True, True, False):  # 25% < 50%: stays closed
        await breaker.record(key, SETTINGS, success=outcome)
    assert (await breaker.state(key))[0] == "closed"
    await redis.aclose()


async def test_forced_states_override_and_reset_clears(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    breaker, key = CircuitBreaker(redis), _key()
    await breaker.force(key, "forced_open")
    assert not (await breaker.acquire(key, SETTINGS, probe_lease_s=30)).allowed
    await breaker.force(key, "forced_closed")
    for _ in range(10):
        await breaker.record(key, SETTINGS, success=False)
    assert (await breaker.acquire(key, SETTINGS, probe_lease_s=30)).allowed
    await breaker.force(key, "closed")
    assert (await breaker.state(key))[0] == "closed"
    assert breaker.transitions >= 3
    await redis.aclose()


async def test_keys_expire_when_idle_but_never_cut_an_open_period_short(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    breaker, key = CircuitBreaker(redis), _key()
    await breaker.record(key, SETTINGS, success=True)
    assert IDLE_TTL_S - 60 < await redis.ttl(key) <= IDLE_TTL_S
    await breaker.force(key, "closed")
    await _open(breaker, key)
    open_for_ms = round(SETTINGS.open_duration_s * 1000)
    assert await redis.pttl(key) > IDLE_TTL_S * 1000 + open_for_ms - 1000
    await asyncio.sleep(SETTINGS.open_duration_s + 0.1)
    assert (await breaker.acquire(key, SETTINGS, probe_lease_s=30)).state == "half_open"
    assert IDLE_TTL_S * 1000 - 60_000 < await redis.pttl(key) <= IDLE_TTL_S * 1000
    await redis.aclose()


async def test_forced_states_never_expire_and_reset_deletes(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    breaker, key = CircuitBreaker(redis), _key()
    await breaker.record(key, SETTINGS, success=False)
    assert await redis.ttl(key) > 0  # an idle expiry, which forcing must lift
    for forced in ("forced_open", "forced_closed"):
        await breaker.force(key, forced)
        await breaker.record(key, SETTINGS, success=False)
        await breaker.acquire(key, SETTINGS, probe_lease_s=30)
        assert (await breaker.state(key))[0] == forced
        assert await redis.ttl(key) == -1
    await breaker.force(key, "closed")
    assert await redis.exists(key) == 0
    await redis.aclose()


async def test_breakers_under_untagged_keys_are_adopted_forced_states_kept(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    breaker, tenant = CircuitBreaker(redis), str(uuid.uuid4())
    await redis.hset(f"cb:{tenant}:stripe", "state", "forced_open")
    await redis.hset(f"cb:{tenant}:sendgrid", mapping={"state": "closed", "window": "0001"})
    await redis.hset(f"cb:{tenant}:twilio", "state", "forced_open")
    await breaker.force(breaker_key(tenant, "twilio"), "forced_closed")  # newer than untagged
    assert await breaker.adopt_legacy_keys() >= 2
    assert [k async for k in redis.scan_iter(match=f"cb:{tenant}:*")] == []
    stripe, sendgrid = breaker_key(tenant, "stripe"), breaker_key(tenant, "sendgrid")
    assert (await breaker.state(stripe))[0] == "forced_open" and await redis.ttl(stripe) == -1
    assert await redis.hget(sendgrid, "window") == b"0001"
    assert IDLE_TTL_S - 60 < await redis.ttl(sendgrid) <= IDLE_TTL_S
    assert (await breaker.state(breaker_key(tenant, "twilio")))[0] == "forced_closed"
    await redis.aclose()
