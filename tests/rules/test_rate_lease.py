"""Leased rate-limit units (rules/rate_lease.py) over real Valkey: the documented tolerance."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from rules.rate_lease import LEASE_TTL_S, RateLeases, lease_block
from rules.rate_limit import RateLimiter

HOURLY = 1 / 3600  # units per second so slow that nothing refills during a test


class CountingLimiter(RateLimiter):
    """A limiter that counts its Redis round trips."""

    trips = 0

    async def acquire_up_to(
        self, key: str, *, rate_per_s: float, burst: int, need: int, up_to: int
    ) -> tuple[int, float]:
        """Count, then take."""
        self.trips += 1
        return await super().acquire_up_to(
            key, rate_per_s=rate_per_s, burst=burst, need=need, up_to=up_to
        )


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _key() -> str:
    return f"test:lease:{uuid.uuid4().hex}"


async def test_the_grant_is_refused_exactly_when_the_limit_refuses(redis: Redis) -> None:
    limiter, key = RateLimiter(redis), _key()
    assert await limiter.acquire_up_to(key, rate_per_s=2, burst=5, need=3, up_to=10) == (5, 0)
    granted, wait_s = await limiter.acquire_up_to(key, rate_per_s=2, burst=5, need=1, up_to=10)
    assert granted == 0 and 0 < wait_s <= 0.5
    assert not (await limiter.acquire(key, rate_per_s=2, burst=5)).allowed


async def test_a_burst_under_200_is_never_leased(redis: Redis) -> None:
    assert lease_block(199) == 1 and lease_block(200) == 2 and lease_block(10**6) == 50
    leases, key = RateLeases(RateLimiter(redis)), _key()
    admitted = [(await leases.acquire(key, rate_per_s=HOURLY, burst=5)).allowed for _ in range(7)]
    assert admitted == [True] * 5 + [False] * 2


async def test_one_round_trip_per_block(redis: Redis) -> None:
    limiter = CountingLimiter(redis)
    leases, key = RateLeases(limiter), _key()
    for _ in range(100):
        assert (await leases.acquire(key, rate_per_s=5000, burst=5000)).allowed
    assert limiter.trips == 2  # blocks of 50
    assert (await leases.acquire(key, rate_per_s=5000, burst=5000, quantity=1000)).allowed
    assert limiter.trips == 3


async def test_processes_stay_within_the_limit_less_what_they_hold(redis: Redis) -> None:
    """Four processes' leases on one key: never over the burst, short by at most their blocks."""
    processes, burst, key = 4, 1000, _key()
    lessees = [RateLeases(RateLimiter(redis)) for _ in range(processes)]
    admitted = 0
    for _ in range(400):
        for leases in lessees:
            admitted += (await leases.acquire(key, rate_per_s=HOURLY, burst=burst)).allowed
    assert burst - processes * (lease_block(burst) - 1) <= admitted <= burst


async def test_units_held_past_their_lease_are_dropped(redis: Redis) -> None:
    now = [0.0]
    limiter = CountingLimiter(redis)
    leases, key = RateLeases(limiter, clock=lambda: now[0]), _key()
    await leases.acquire(key, rate_per_s=HOURLY, burst=1000)
    await leases.acquire(key, rate_per_s=HOURLY, burst=1000)
    assert limiter.trips == 1
    now[0] += LEASE_TTL_S
    await leases.acquire(key, rate_per_s=HOURLY, burst=1000)
    assert limiter.trips == 2
