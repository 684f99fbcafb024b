"""GCRA rate limiting in one atomic Redis Lua script using the server's clock."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

# KEYS[1]: the key. ARGV: emission interval (µs per unit), burst (units), quantity (units).
# Returns {allowed (0/1), retry_after_us}. The theoretical arrival time (TAT) is the only state;
# TIME makes every process agree on "now" whatever their own clocks say.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local increment = interval * tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + increment
local wait = new_tat - now - tolerance
if wait > 0 then
  return {0, math.ceil(wait)}
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
return {1, 0}
"""


@dataclass(frozen=True)
class RateDecision:
    """Whether the units were admitted, and if not, how long until they would be."""

    allowed: bool
    retry_after_s: float


class RateLimiter:
    """Per-key GCRA limiter shared by every process that talks to the same Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_GCRA)

    async def acquire(
        self, key: str, *, rate_per_s: float, burst: int, quantity: int = 1
    ) -> RateDecision:
        """Admit `quantity` units at `rate_per_s` with up to `burst` units at once."""
        interval_us = max(1, round(1_000_000 / rate_per_s))
        allowed, wait_us = await self._script(
            keys=[key], args=[interval_us, max(burst, 1), max(quantity, 1)]
        )
        return RateDecision(bool(allowed), int(wait_us) / 1_000_000)
