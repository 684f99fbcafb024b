"""GCRA rate limiting in one atomic Redis Lua script using the server's clock."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

# Lua helpers, also composed into the safety gate's script so it can check a rate without
# spending it. `gcra_check` only reads: it returns the wait in µs (0: admitted) and the new
# theoretical arrival time (TAT), the only state; `gcra_commit` stores that TAT with an expiry
# at the moment it stops mattering, so a rate key never outlives its use.
GCRA_LUA = """
local function gcra_check(key, now, interval, burst, quantity)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval * quantity
  local wait = new_tat - now - interval * burst
  if wait > 0 then return math.ceil(wait), new_tat end
  return 0, new_tat
end
local function gcra_commit(key, now, new_tat)
  local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
  redis.call('SET', key, string.format('%d', new_tat), 'PX', ttl_ms)
end
"""

# KEYS[1]: the key. ARGV: emission interval (µs per unit), burst (units), quantity (units).
# Returns {allowed (0/1), retry_after_us}. TIME makes every process agree on "now" whatever
# their own clocks say.
_GCRA = (
    GCRA_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait, new_tat = gcra_check(KEYS[1], now, tonumber(ARGV[1]), tonumber(ARGV[2]),
                                 tonumber(ARGV[3]))
if wait > 0 then return {0, wait} end
gcra_commit(KEYS[1], now, new_tat)
return {1, 0}
"""
)

# The same limit, granting as many units as it can up to ARGV[4] (a lease, rules/rate_lease.py)
# and at least ARGV[3]; refused (with the wait for ARGV[3]) exactly when `_GCRA` would refuse
# ARGV[3] units. Returns {granted (0: refused), retry_after_us}.
_GCRA_UP_TO = (
    GCRA_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local need, up_to = tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = math.floor((now + interval * burst - tat) / interval)
if room < need then return {0, math.ceil(tat + interval * need - now - interval * burst)} end
local granted = math.min(room, up_to)
gcra_commit(KEYS[1], now, tat + interval * granted)
return {granted, 0}
"""
)


@dataclass(frozen=True)
class RateDecision:
    """Whether the units were admitted, and if not, how long until they would be."""

    allowed: bool
    retry_after_s: float


def gcra_args(*, rate_per_s: float, burst: int, quantity: int = 1) -> list[int]:
    """Return the script arguments for `gcra_check`: interval (µs), burst, quantity."""
    return [max(1, round(1_000_000 / rate_per_s)), max(burst, 1), max(quantity, 1)]


class RateLimiter:
    """Per-key GCRA limiter shared by every process that talks to the same Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_GCRA)
        self._up_to = redis.register_script(_GCRA_UP_TO)

    async def acquire(
        self, key: str, *, rate_per_s: float, burst: int, quantity: int = 1
    ) -> RateDecision:
        """Admit `quantity` units at `rate_per_s` with up to `burst` units at once."""
        allowed, wait_us = await self._script(
            keys=[key], args=gcra_args(rate_per_s=rate_per_s, burst=burst, quantity=quantity)
        )
        return RateDecision(bool(allowed), int(wait_us) / 1_000_000)

    async def acquire_up_to(
        self, key: str, *, rate_per_s: float, burst: int, need: int, up_to: int
    ) -> tuple[int, float]:
        """Take as many units as admitted, up to `up_to`: (units, 0), or (0, seconds to wait)."""
        args = gcra_args(rate_per_s=rate_per_s, burst=burst, quantity=need)
        granted, wait_us = await self._up_to(keys=[key], args=[*args, max(up_to, need)])
        return int(granted), int(wait_us) / 1_000_000
