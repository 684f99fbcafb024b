"""The safety gate: one call answering permit, wait(seconds, reason) or deny(reason).

Checks, in order: kill switches (PostgreSQL), the incident's attempt cap, the vendor's circuit
breaker, the vendor's call rate, the tenant-workflow hourly budget (all Redis). Redis being
unreachable means safety state is unknown, so the gate answers wait: remediation fails closed.
"""

from __future__ import annotations

import logging
import random
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from rules.circuit_breaker import CircuitBreaker, breaker_key
from rules.policy import Policies
from rules.rate_limit import RateLimiter
from workflows.incident_types import GateDecision, GateRequest, OutcomeRecord

log = logging.getLogger("awfdrs.gate")
# Each wait answer costs the incident a workflow task when it ends, so repeated waits back off
# (1 s, 2 s, 4 s … up to a minute, jittered) instead of every waiting incident asking again
# at the same moment: 10,000 incidents held by one open breaker would otherwise re-ask
# thousands of times a second. A minute also bounds how late a breaker reset is noticed.
FIRST_WAIT_S = 1.0
MAX_WAIT_S = 60.0
_KILL_SWITCH = text("""
SELECT reason FROM kill_switches
WHERE tenant_id = :tenant_id AND workflow = :workflow AND active
  AND (vendor IS NULL OR vendor = :vendor)
ORDER BY created_at LIMIT 1
""")
# KEYS[1]: budget key prefix. ARGV: limit. Fixed hourly window on the server's clock.
_BUDGET = """
local t = redis.call('TIME')
local hour = math.floor(tonumber(t[1]) / 3600)
local key = KEYS[1] .. ':' .. hour
local used = redis.call('INCR', key)
if used == 1 then redis.call('EXPIRE', key, 3700) end
if used > tonumber(ARGV[1]) then
  redis.call('DECR', key)
  return {0, 3600 - (tonumber(t[1]) % 3600)}
end
return {1, 0}
"""


def _count_transition(before: str, after: str) -> None:
    if not activity.in_activity():
        return
    activity.metric_meter().create_counter(
        "awfdrs_breaker_transitions", "Circuit breaker state changes"
    ).add(1, {"from": before, "to": after})


def _wait(seconds: float, reason: str) -> GateDecision:
    """A wait of at least `seconds` (0: nothing says when the answer will change)."""
    return GateDecision("wait", seconds, reason)


def spread_wait(base_s: float, waits: int, rng: random.Random) -> float:
    """How long to wait after the `waits`-th wait in a row whose known minimum is `base_s`."""
    backoff = min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** min(waits, 10))
    return round(base_s + rng.uniform(backoff / 2, backoff), 3)


class SafetyGate:
    """Decides whether the next remediation call may run, and counts outcomes."""

    def __init__(
        self, *, engine: AsyncEngine, redis: Redis, policies: Policies, calls_per_hour: int
    ) -> None:
        self._engine = engine
        self._policies = policies
        self._breaker = CircuitBreaker(redis, on_transition=_count_transition)
        self._limiter = RateLimiter(redis)
        self._budget = redis.register_script(_BUDGET)
        self._calls_per_hour = calls_per_hour
        self._rng = random.Random()

    @activity.defn(name="check_gate")
    async def check_gate(self, req: GateRequest) -> GateDecision:
        """Answer permit, wait or deny for attempt `req.attempt`."""
        decision = await self._decide(req)
        if decision.verdict == "wait":
            decision.wait_s = spread_wait(decision.wait_s, req.waits, self._rng)
        if activity.in_activity():
            activity.metric_meter().create_counter(
                "awfdrs_gate_answers", "Safety gate answers by verdict"
            ).add(1, {"verdict": decision.verdict})
        return decision

    async def _decide(self, req: GateRequest) -> GateDecision:
        if reason := await self._kill_switch(req):
            return GateDecision("deny", reason=f"kill switch: {reason}", kill=True)
        if req.attempt > req.max_attempts:
            return GateDecision("deny", reason=f"attempt cap of {req.max_attempts} reached")
        try:
            return await self._redis_checks(req)
        except (RedisError, OSError) as exc:
            log.warning("safety state unavailable: %s", exc)
            return _wait(0, f"safety state unavailable (redis: {type(exc).__name__})")

    async def _kill_switch(self, req: GateRequest) -> str | None:
        async with self._engine.connect() as conn:
            reason = (
                await conn.execute(
                    _KILL_SWITCH,
                    {
                        "tenant_id": uuid.UUID(req.tenant_id),
                        "workflow": req.source_workflow,
                        "vendor": req.vendor,
                    },
                )
            ).scalar()
        return str(reason) if reason is not None else None

    async def _redis_checks(self, req: GateRequest) -> GateDecision:
        vendor = self._policies.vendors.for_vendor(req.vendor)
        if req.vendor:
            key = breaker_key(req.tenant_id, req.vendor)
            state, remaining = await self._breaker.state(key)
            if state == "forced_open":
                return _wait(0, "circuit forced open by an operator")
            if state == "open" and remaining > 0:
                return _wait(remaining, f"circuit open: wait {remaining:.0f}s")
            rate = await self._limiter.acquire(
                f"rl:vendor:{req.tenant_id}:{req.vendor}",
                rate_per_s=vendor.rate_limit_per_s,
                burst=max(1, int(vendor.rate_limit_per_s)),
            )
            if not rate.allowed:
                return _wait(rate.retry_after_s, f"{req.vendor} rate limit")
        allowed, wait_s = await self._budget(
            keys=[f"budget:{req.tenant_id}:{req.source_workflow}"], args=[self._calls_per_hour]
        )
        if not allowed:
            return _wait(float(wait_s), f"hourly budget of {self._calls_per_hour} calls exhausted")
        if not req.vendor:
            return GateDecision("permit")
        permit = await self._breaker.acquire(
            breaker_key(req.tenant_id, req.vendor),
            vendor.circuit_breaker,
            probe_lease_s=vendor.call_timeout_s + 15,
        )
        if not permit.allowed:
            return _wait(permit.wait_s, f"circuit {permit.state.replace('_', '-')}: wait")
        return GateDecision("permit", probe=permit.state == "half_open")

    @activity.defn(name="record_outcome")
    async def record_outcome(self, req: OutcomeRecord) -> str:
        """Count a callback outcome in the vendor's breaker; return the breaker state."""
        if req.outcome == "cancelled":
            return "unchanged"  # a cancelled probe's lease simply expires
        settings = self._policies.vendors.for_vendor(req.vendor).circuit_breaker
        # A 4xx is the client's problem, not the vendor's: the vendor answered.
        return await self._breaker.record(
            breaker_key(req.tenant_id, req.vendor), settings, success=req.outcome != "retryable"
        )
