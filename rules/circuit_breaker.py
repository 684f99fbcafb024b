"""Per-vendor circuit breaker with resilience4j semantics, shared by every process via Redis.

Each transition is one atomic Lua script using Redis server time, so half-open probes are
counted once across all workers (the flaw of pybreaker and purgatory, see reliability.md).
State lives in the hash `cb:{tenant}:{vendor}`: state, window (a string of 0/1 outcomes, newest
last), open_until (µs), probes (issued), probe_ok (succeeded), probe_deadline (µs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from rules.policy import CircuitBreakerSettings

log = logging.getLogger("awfdrs.breaker")
State = Literal["closed", "open", "half_open", "forced_open", "forced_closed"]
STATES: tuple[State, ...] = ("closed", "open", "half_open", "forced_open", "forced_closed")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
"""

# ARGV: half_open_probes, probe_lease_us. Returns {allowed, wait_us, state_before, state_after}.
_ACQUIRE = (
    _NOW
    + """
local before = state
if state == 'forced_open' then return {0, 0, before, state} end
if state == 'forced_closed' or state == 'closed' then return {1, 0, before, state} end
if state == 'open' then
  local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
  if now < open_until then return {0, open_until - now, before, state} end
  state = 'half_open'
  redis.call('HSET', KEYS[1], 'state', state, 'probes', 0, 'probe_ok', 0, 'probe_deadline', 0)
end
local probes = tonumber(redis.call('HGET', KEYS[1], 'probes') or '0')
local deadline = tonumber(redis.call('HGET', KEYS[1], 'probe_deadline') or '0')
if probes > 0 and deadline > 0 and now > deadline then
  -- Probes whose callers vanished without reporting: release them.
  probes = 0
  redis.call('HSET', KEYS[1], 'probes', 0, 'probe_ok', 0)
end
if probes < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'probes', probes + 1, 'probe_deadline', now + tonumber(ARGV[2]))
  return {1, 0, before, state}
end
return {0, 1000000, before, state}
"""
)

# ARGV: success (1/0), window_size, minimum_calls, failure_rate_threshold (0-1),
# open_duration_us, half_open_probes. Returns {state_before, state_after}.
_RECORD = (
    _NOW
    + """
local before = state
local success = ARGV[1] == '1'
if state == 'closed' then
  local window = (redis.call('HGET', KEYS[1], 'window') or '') .. (success and '1' or '0')
  local size = tonumber(ARGV[2])
  if string.len(window) > size then window = string.sub(window, -size) end
  local calls = string.len(window)
  local _, failures = string.gsub(window, '0', '')
  if calls >= tonumber(ARGV[3]) and failures / calls >= tonumber(ARGV[4]) then
    state = 'open'
    redis.call('HSET', KEYS[1], 'state', state, 'open_until', now + tonumber(ARGV[5]),
               'window', '')
  else
    redis.call('HSET', KEYS[1], 'state', state, 'window', window)
  end
elseif state == 'half_open' then
  if not success then
    state = 'open'
    redis.call('HSET', KEYS[1], 'state', state, 'open_until', now + tonumber(ARGV[5]),
               'probes', 0, 'probe_ok', 0, 'window', '')
  else
    local ok = redis.call('HINCRBY', KEYS[1], 'probe_ok', 1)
    if ok >= tonumber(ARGV[6]) then
      state = 'closed'
      redis.call('HSET', KEYS[1], 'state', state, 'window', '', 'probes', 0, 'probe_ok', 0)
    end
  end
end
return {before, state}
"""
)

# ARGV: target state ('forced_open', 'forced_closed' or 'closed' for reset).
_FORCE = (
    _NOW
    + """
local before = state
if ARGV[1] == 'closed' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
end
return {before, ARGV[1]}
"""
)


@dataclass(frozen=True)
class BreakerPermit:
    """Whether a call may go to the vendor now, and if not, for how long to wait."""

    allowed: bool
    wait_s: float
    state: str


def breaker_key(tenant_id: str, vendor: str) -> str:
    """Return the Redis key of a tenant's breaker for one vendor."""
    return f"cb:{tenant_id}:{vendor}"


class CircuitBreaker:
    """Acquire before a vendor call, record its outcome after; force or reset by hand."""

    def __init__(
        self, redis: Redis, on_transition: Callable[[str, str], None] | None = None
    ) -> None:
        self._redis = redis
        self._on_transition = on_transition
        self._acquire = redis.register_script(_ACQUIRE)
        self._record = redis.register_script(_RECORD)
        self._force = redis.register_script(_FORCE)
        self.transitions = 0

    async def acquire(
        self, key: str, settings: CircuitBreakerSettings, *, probe_lease_s: float
    ) -> BreakerPermit:
        """Ask for a call; in half-open only `half_open_probes` callers get through."""
        allowed, wait_us, before, after = await self._acquire(
            keys=[key], args=[settings.half_open_probes, round(probe_lease_s * 1_000_000)]
        )
        self._transition(key, before, after)
        return BreakerPermit(bool(allowed), int(wait_us) / 1_000_000, _text(after))

    async def record(self, key: str, settings: CircuitBreakerSettings, *, success: bool) -> str:
        """Count one outcome; return the state afterwards."""
        before, after = await self._record(
            keys=[key],
            args=[
                1 if success else 0,
                settings.window_size,
                settings.minimum_calls,
                settings.failure_rate_threshold,
                round(settings.open_duration_s * 1_000_000),
                settings.half_open_probes,
            ],
        )
        self._transition(key, before, after)
        return _text(after)

    async def force(
        self, key: str, state: Literal["forced_open", "forced_closed", "closed"]
    ) -> str:
        """Force the breaker open or closed, or reset it to closed with an empty window."""
        before, after = await self._force(keys=[key], args=[state])
        self._transition(key, before, after)
        return _text(after)

    async def state(self, key: str) -> tuple[str, float]:
        """Return the current state and, when open, the seconds until half-open."""
        raw_state, open_until = await self._redis.hmget(key, ["state", "open_until"])
        state = _text(raw_state) if raw_state else "closed"
        if state != "open" or not open_until:
            return state, 0.0
        seconds, micros = await self._redis.time()
        remaining = int(open_until) - (int(seconds) * 1_000_000 + int(micros))
        return state, max(0.0, remaining / 1_000_000)

    def _transition(self, key: str, before: bytes | str, after: bytes | str) -> None:
        if _text(before) != _text(after):
            self.transitions += 1
            if self._on_transition is not None:
                self._on_transition(_text(before), _text(after))
            log.info(
                "circuit %s: %s → %s",
                key,
                _text(before),
                _text(after),
                extra={"breaker": key, "from": _text(before), "to": _text(after)},
            )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
