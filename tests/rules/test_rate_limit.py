"""GCRA over real Valkey: exact admission across processes, Retry-After, per-key isolation."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid

from redis.asyncio import Redis

from rules.rate_limit import RateLimiter


def _worker(url: str, key: str, calls: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def run() -> int:
        redis = Redis.from_url(url)
        limiter = RateLimiter(redis)
        admitted = 0
        for _ in range(calls):
            decision = await limiter.acquire(key, rate_per_s=100 / 3600, burst=100)
            admitted += decision.allowed
        await redis.aclose()
        return admitted

    results.put(asyncio.run(run()))


def test_eight_processes_never_admit_more_than_the_limit(redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    for _ in range(3):
        key = f"test:rl:{uuid.uuid4().hex}"
        results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
        workers = [
            context.Process(target=_worker, args=(redis_url, key, 100, results)) for _ in range(8)
        ]
        for worker in workers:
            worker.start()
        admitted = sum(results.get(timeout=60) for _ in workers)
        for worker in workers:
            worker.join(timeout=30)
        assert admitted == 100


async def test_denial_says_when_to_come_back_and_keys_are_independent(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    limiter = RateLimiter(redis)
    key, other = f"test:rl:{uuid.uuid4().hex}", f"test:rl:{uuid.uuid4().hex}"
    assert [(await limiter.acquire(key, rate_per_s=2, burst=2)).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    denied = await limiter.acquire(key, rate_per_s=2, burst=2)
    assert 0 < denied.retry_after_s <= 0.5
    assert (await limiter.acquire(other, rate_per_s=2, burst=2)).allowed
    await asyncio.sleep(denied.retry_after_s + 0.05)
    assert (await limiter.acquire(key, rate_per_s=2, burst=2)).allowed
    await redis.aclose()
