"""The circuit breaker over real Valkey, including half-open probes shared by 8 processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid

from redis.asyncio import Redis

from rules.circuit_breaker import CircuitBreaker
from rules.policy import CircuitBreakerSettings

SETTINGS = CircuitBreakerSettings(
    window_size=10,
    minimum_calls=4,
    failure_rate_threshold=0.5,
    open_duration_s=3.0,
    half_open_probes=2,
)


async def _open(breaker: CircuitBreaker, key: str) -> None:
    for _ in range(4):
        assert (await breaker.acquire(key, SETTINGS, probe_lease_s=30)).allowed
        await breaker.record(key, SETTINGS, success=False)
    assert (await breaker.state(key))[0] == "open"


def _probe_worker(
    url: str, key: str, vendor_ok: bool, barrier: object, results: multiprocessing.Queue[int]
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
        context.Process(target=_probe_worker, args=(url, key, vendor_ok, barrier, results))
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
    breaker, key = CircuitBreaker(redis), f"cb:test:{uuid.uuid4().hex}"
    await _open(breaker, key)
    assert not (await breaker.acquire(key, SETTINGS, probe_lease_s=30)).allowed
    await asyncio.sleep(3.1)
    assert await asyncio.to_thread(_probe_round, redis_url, key, True) == 2
    assert (await breaker.state(key))[0] == "closed"
    await redis.aclose()


async def test_a_failed_probe_reopens(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    breaker, key = CircuitBreaker(redis), f"cb:test:{uuid.uuid4().hex}"
    await _open(breaker, key)
    await asyncio.sleep(3.1)
    assert await asyncio.to_thread(_probe_round, redis_url, key, False) == 2
    state, remaining = await breaker.state(key)
    assert state == "open" and remaining > 0
    assert not (await breaker.acquire(key, SETTINGS, probe_lease_s=30)).allowed
    await redis.aclose()


async def test_minimum_calls_and_threshold_follow_resilience4j(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    breaker, key = CircuitBreaker(redis), f"cb:test:{uuid.uuid4().hex}"
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
    breaker, key = CircuitBreaker(redis), f"cb:test:{uuid.uuid4().hex}"
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
