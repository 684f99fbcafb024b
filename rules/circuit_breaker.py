"""Per-vendor circuit breaker with resilience4j semantics, shared by every process via Redis.

Each transition is one atomic Lua script using Redis server time, so half-open probes are
counted once across all workers (client-side breakers such as pybreaker or purgatory count
them per process, so every worker would send its own probes). State lives in the hash
`cb:{<tenant>}:<vendor>`: state, window (a string of 0/1 outcomes, newest last), open_until (µs),
probes (issued), probe_ok (succeeded), probe_deadline (µs). The braces are a Redis Cluster hash
tag: every key the safety gate touches in one script carries the same `{<tenant>}`, so they
share a slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from rules.policy import CircuitBreakerSettings
from vocabulary import BreakerState

log = logging.getLogger("awfdrs.breaker")
# What an operator may set: forced open, forced closed, or closed again (a reset).
FORCEABLE_STATES = frozenset(
    {BreakerState.FORCED_OPEN, BreakerState.FORCED_CLOSED, BreakerState.CLOSED}
)
# Vendor names are free-form, so breaker keys would otherwise pile up forever. A key expires
# this long after its last write, plus whatever remains of an open period, so expiry never cuts
# a live breaker short; it only forgets a vendor nobody has called for a day. Forced states
# never expire: an operator's cut-off that silently lapsed would resume calls to that vendor.
IDLE_TTL_S = 24 * 3600

# Lua helpers over one breaker hash, also composed into the safety gate's script; `now` is the
# server's clock in µs. `breaker_check` only reads, so a caller can combine it with other checks
# and write nothing unless every check passes; `breaker_take` then commits what it allowed.
BREAKER_LUA = """
local function breaker_touch(key, now, idle_ms)
  local fields = redis.call('HMGET', key, 'state', 'open_until')
  if fields[1] == 'forced_open' or fields[1] == 'forced_closed' then
    redis.call('PERSIST', key)
  elseif fields[1] == 'open' then
    local open_left_ms = math.ceil((tonumber(fields[2] or '0') - now) / 1000)
    redis.call('PEXPIRE', key, idle_ms + math.max(0, open_left_ms))
  else
    redis.call('PEXPIRE', key, idle_ms)
  end
end
-- {allowed, wait_us, before, after, probes, fresh}: `probes` is the count this caller's probe
-- would follow (nil when no probe is needed); `fresh` restarts the probe counters, on the
-- way from open to half-open or when every earlier probe's caller vanished past its lease.
local function breaker_check(key, now, max_probes)
  local state = redis.call('HGET', key, 'state') or 'closed'
  if state == 'forced_open' then return {allowed = false, wait_us = 0, before = state} end
  if state == 'forced_closed' or state == 'closed' then
    return {allowed = true, wait_us = 0, before = state, after = state}
  end
  if state == 'open' then
    local open_until = tonumber(redis.call('HGET', key, 'open_until') or '0')
    if now < open_until then
      return {allowed = false, wait_us = open_until - now, before = state}
    end
    return {allowed = true, before = state, after = 'half_open', probes = 0, fresh = true}
  end
  local probes = tonumber(redis.call('HGET', key, 'probes') or '0')
  local deadline = tonumber(redis.call('HGET', key, 'probe_deadline') or '0')
  local fresh = probes > 0 and deadline > 0 and now > deadline
  if fresh then probes = 0 end
  if probes < max_probes then
    return {allowed = true, before = state, after = state, probes = probes, fresh = fresh}
  end
  return {allowed = false, wait_us = 1000000, before = state}
end
local function breaker_take(key, now, check, lease_us, idle_ms)
  if check.probes == nil then return end
  if check.fresh then
    redis.call('HSET', key, 'state', 'half_open', 'probes', 0, 'probe_ok', 0)
  end
  redis.call('HSET', key, 'probes', check.probes + 1, 'probe_deadline', now + lease_us)
  breaker_touch(key, now, idle_ms)
end
"""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# ARGV: half_open_probes, probe_lease_us, idle_ms. Returns {allowed, wait_us, before, after}.
_ACQUIRE = (
    BREAKER_LUA
    + _NOW
    + """
local check = breaker_check(KEYS[1], now, tonumber(ARGV[1]))
if not check.allowed then return {0, check.wait_us, check.before, check.before} end
breaker_take(KEYS[1], now, check, tonumber(ARGV[2]), tonumber(ARGV[3]))
return {1, 0, check.before, check.after}
"""
)

# ARGV: success (1/0), window_size, minimum_calls, failure_rate_threshold (0-1),
# open_duration_us, half_open_probes, idle_ms. Returns {state_before, state_after}.
_RECORD = (
    BREAKER_LUA
    + _NOW
    + """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
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
if before == 'closed' or before == 'half_open' then
  breaker_touch(KEYS[1], now, tonumber(ARGV[7]))
end
return {before, state}
"""
)

# ARGV: target state ('forced_open', 'forced_closed' or 'closed' for reset).
_FORCE = """
local before = redis.call('HGET', KEYS[1], 'state') or 'closed'
if ARGV[1] == 'closed' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
  redis.call('PERSIST', KEYS[1])
end
return {before, ARGV[1]}
"""

# KEYS: the untagged key of an earlier release, its tagged key. ARGV: idle_ms. Moves the
# breaker (an operator's forced state included) unless the tagged key already has newer state.
# The two keys hash to different slots: this runs only against the single-node Redis that
# earlier releases used, once per gate process.
_ADOPT = (
    BREAKER_LUA
    + _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[2])
breaker_touch(KEYS[2], now, tonumber(ARGV[1]))
return 1
"""
)


@dataclass(frozen=True)
class BreakerPermit:
    """Whether a call may go to the vendor now, and if not, for how long to wait."""

    allowed: bool
    wait_s: float
    state: BreakerState


def breaker_prefix(tenant_id: str) -> str:
    """Return the prefix shared by the Redis keys of a tenant's breakers."""
    return f"cb:{{{tenant_id}}}:"


def breaker_key(tenant_id: str, vendor: str) -> str:
    """Return the Redis key of a tenant's breaker for one vendor."""
    return breaker_prefix(tenant_id) + vendor


def acquire_args(settings: CircuitBreakerSettings, *, probe_lease_s: float) -> list[int]:
    """Return the script arguments of `breaker_check` and `breaker_take`."""
    return [settings.half_open_probes, round(probe_lease_s * 1_000_000), IDLE_TTL_S * 1000]


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
        self._adopt = redis.register_script(_ADOPT)
        self.transitions = 0

    async def acquire(
        self, key: str, settings: CircuitBreakerSettings, *, probe_lease_s: float
    ) -> BreakerPermit:
        """Ask for a call; in half-open only `half_open_probes` callers get through."""
        allowed, wait_us, before, after = await self._acquire(
            keys=[key], args=acquire_args(settings, probe_lease_s=probe_lease_s)
        )
        self.report_transition(key, before, after)
        return BreakerPermit(bool(allowed), int(wait_us) / 1_000_000, BreakerState(_text(after)))

    async def record(
        self, key: str, settings: CircuitBreakerSettings, *, success: bool
    ) -> BreakerState:
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
                IDLE_TTL_S * 1000,
            ],
        )
        self.report_transition(key, before, after)
        return BreakerState(_text(after))

    async def force(self, key: str, state: str) -> BreakerState:
        """Force the breaker open or closed, or reset it to closed with an empty window.

        `state` is one of `FORCEABLE_STATES`; anything else raises ValueError.
        """
        target = BreakerState(state)
        if target not in FORCEABLE_STATES:
            raise ValueError(f"a breaker cannot be forced {target}")
        before, after = await self._force(keys=[key], args=[target.value])
        self.report_transition(key, before, after)
        return BreakerState(_text(after))

    async def state(self, key: str) -> tuple[BreakerState, float]:
        """Return the current state and, when open, the seconds until half-open."""
        raw_state, open_until = await self._redis.hmget(key, ["state", "open_until"])
        state = BreakerState(_text(raw_state)) if raw_state else BreakerState.CLOSED
        if state != BreakerState.OPEN or not open_until:
            return state, 0.0
        seconds, micros = await self._redis.time()
        remaining = int(open_until) - (int(seconds) * 1_000_000 + int(micros))
        return state, max(0.0, remaining / 1_000_000)

    async def adopt_legacy_keys(self) -> int:
        """Move breakers stored under untagged `cb:<tenant>:<vendor>` keys; return how many."""
        moved = 0
        async for raw in self._redis.scan_iter(match="cb:*", count=1000):
            legacy = _text(raw)
            if "{" in legacy or legacy.count(":") < 2:
                continue
            _, tenant_id, vendor = legacy.split(":", 2)
            tagged = breaker_key(tenant_id, vendor)
            moved += int(await self._adopt(keys=[legacy, tagged], args=[IDLE_TTL_S * 1000]))
        return moved

    def report_transition(self, key: str, before: bytes | str, after: bytes | str) -> None:
        """Count and log a state change that a script made (nothing when unchanged)."""
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
