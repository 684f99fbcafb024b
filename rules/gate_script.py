"""The safety gate's one Redis script: breaker, vendor rate, callback slots and hourly budget.

Composed from the breaker's and the rate limiter's Lua helpers and run by
`activities.safety.SafetyGate`; Redis server time is the only clock.
"""

from __future__ import annotations

from rules.circuit_breaker import BREAKER_LUA
from rules.rate_limit import GCRA_LUA

# A tenant-workflow's calls this hour, as the hash {hour, used} on the server's clock: the first
# call of a new hour starts again from zero, and the key expires when its hour ends.
_BUDGET_LUA = """
local function budget_check(key, now, limit)
  local hour = math.floor(now / 3600000000)
  local fields = redis.call('HMGET', key, 'hour', 'used')
  local used = 0
  if tonumber(fields[1]) == hour then used = tonumber(fields[2]) end
  if used >= limit then return (hour + 1) * 3600000000 - now, used end
  return 0, used
end
local function budget_commit(key, now, used)
  local hour = math.floor(now / 3600000000)
  redis.call('HSET', key, 'hour', hour, 'used', used + 1)
  redis.call('EXPIREAT', key, (hour + 1) * 3600)
end
"""
# A tenant's callbacks in flight: a sorted set of leases (member: incident:attempt, score: when
# the lease lapses). The callback activity releases its lease when it ends; a lease whose
# caller vanished lapses on its own.
_SLOTS_LUA = """
local function slots_check(key, now, cap)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= cap then return 1000000 end
  return 0
end
local function slots_take(key, now, member, lease_us)
  redis.call('ZADD', key, now + lease_us, member)
  redis.call('PEXPIRE', key, math.ceil(lease_us / 1000) + 1000)
end
"""
# The breaker, rate and budget are decided in one script that writes nothing unless all three
# permit. Taking each in turn would spend a rate token and a budget unit on calls the breaker
# then holds back, and a half-open probe taken before the rate or budget said wait would be
# held by nobody until its lease lapsed; compensating afterwards would still let concurrent
# callers see the half-spent state, and a crash in between would leak it. One script is also
# one round trip. Its keys share the `{<tenant>}` hash tag, so under Redis Cluster they are in
# one slot.
# KEYS: budget, callback slots, then for a vendor its breaker and rate keys. ARGV: the hourly
# limit, the tenant's slot cap, the slot lease (µs), the slot member, then `acquire_args` and
# `gcra_args`. Returns {permit, wait_us, blocker, breaker before, after}, where blocker is the
# breaker state, 'rate', 'slots' or 'budget' that said wait.
GATE_LUA = (
    BREAKER_LUA
    + GCRA_LUA
    + _BUDGET_LUA
    + _SLOTS_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local breaker, new_tat, rate_wait
if #KEYS == 4 then
  breaker = breaker_check(KEYS[3], now, tonumber(ARGV[5]))
  if not breaker.allowed then
    return {0, breaker.wait_us, breaker.before, breaker.before, breaker.before}
  end
  rate_wait, new_tat = gcra_check(KEYS[4], now, tonumber(ARGV[8]), tonumber(ARGV[9]),
                                  tonumber(ARGV[10]))
  if rate_wait > 0 then return {0, rate_wait, 'rate', breaker.before, breaker.before} end
end
local before = breaker and breaker.before or ''
local slots_wait = slots_check(KEYS[2], now, tonumber(ARGV[2]))
if slots_wait > 0 then return {0, slots_wait, 'slots', before, before} end
local budget_wait, used = budget_check(KEYS[1], now, tonumber(ARGV[1]))
if budget_wait > 0 then return {0, budget_wait, 'budget', before, before} end
budget_commit(KEYS[1], now, used)
slots_take(KEYS[2], now, ARGV[4], tonumber(ARGV[3]))
if breaker == nil then return {1, 0, '', '', ''} end
gcra_commit(KEYS[4], now, new_tat)
breaker_take(KEYS[3], now, breaker, tonumber(ARGV[6]), tonumber(ARGV[7]))
return {1, 0, '', before, breaker.after}
"""
)
