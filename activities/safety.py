"""The safety gate: one call answering permit, wait(seconds, cause) or deny(reason).

Checks, in order: kill switches and the registry (PostgreSQL, one query), the incident's attempt
cap, then the vendor's circuit breaker, the vendor's call rate and the tenant-workflow hourly
budget (Redis, one script). Redis being unreachable means safety state is unknown, so the gate
answers wait: remediation fails closed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from dataclasses import replace
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.dry_run import last_attempt_skipped
from activities.gate_registry import read_registry
from rules.circuit_breaker import CircuitBreaker, acquire_args, breaker_key
from rules.gate_script import GATE_LUA
from rules.maintenance import covering, windows_from_json
from rules.policy import Policies
from rules.rate_limit import gcra_args
from vocabulary import BreakerState, CallOutcome, GateVerdict
from workflows.activity_payloads import GateDecision, GateRequest, OutcomeRecord

log = logging.getLogger("awfdrs.gate")
# Each wait answer costs the incident a workflow task when it ends, so repeated waits back off
# (1 s, 2 s, 4 s … up to a minute, jittered) instead of every waiting incident asking again
# at the same moment: 10,000 incidents held by one open breaker would otherwise re-ask
# thousands of times a second. A minute also bounds how late a breaker reset is noticed.
FIRST_WAIT_S = 1.0
# How long an attempt's "outcome counted" marker is kept: far longer than any attempt's retries.
COUNTED_TTL_S = 86_400
MAX_WAIT_S = 60.0


def rate_key(tenant_id: str, vendor: str) -> str:
    """Return the Redis key of a tenant's call rate to one vendor."""
    return f"rl:vendor:{{{tenant_id}}}:{vendor}"


def budget_key(tenant_id: str, workflow: str) -> str:
    """Return the Redis key of a tenant-workflow's hourly call budget."""
    return f"budget:{{{tenant_id}}}:{workflow}"


def slots_key(tenant_id: str) -> str:
    """Return the Redis key of a tenant's callbacks in flight."""
    return f"slots:{{{tenant_id}}}"


def slot_member(incident_id: str, attempt: int) -> str:
    """The lease of one attempt (the callback's idempotency key)."""
    return f"{incident_id}:{attempt}"


async def release_slot(redis: Redis, tenant_id: str, member: str) -> None:
    """Give back an attempt's callback slot (its lease would otherwise lapse on its own)."""
    await redis.zrem(slots_key(tenant_id), member)


def _count_transition(before: str, after: str) -> None:
    if not activity.in_activity():
        return
    activity.metric_meter().create_counter(
        "awfdrs_breaker_transitions", "Circuit breaker state changes"
    ).add(1, {"from": before, "to": after})


def _wait(seconds: float, cause: str) -> GateDecision:
    """A wait of at least `seconds` (0: nothing says when the answer will change)."""
    return GateDecision(GateVerdict.WAIT, seconds, cause)


def _deny(reason: str, *, kill: bool = False, suppress: bool = False) -> GateDecision:
    return GateDecision(GateVerdict.DENY, reason=reason, kill=kill, suppress=suppress)


def spread_wait(base_s: float, waits: int, rng: random.Random) -> float:
    """How long to wait after the `waits`-th wait in a row whose known minimum is `base_s`."""
    backoff = min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** min(waits, 10))
    return round(base_s + rng.uniform(backoff / 2, backoff), 3)


class SafetyGate:
    """Decides whether the next remediation call may run, and counts outcomes."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: Redis,
        policies: Policies,
        calls_per_hour: int,
        max_callbacks: int = 50,
        maintenance_recheck_s: float = 30.0,
    ) -> None:
        self._engine = engine
        self._maintenance_recheck_s = maintenance_recheck_s
        self._max_callbacks = max_callbacks
        self._policies = policies
        self._redis = redis
        self._breaker = CircuitBreaker(redis, on_transition=_count_transition)
        self._gate = redis.register_script(GATE_LUA)
        self._calls_per_hour = calls_per_hour
        self._rng = random.Random()
        self._legacy_adopted = False
        self._adopting = asyncio.Lock()

    @activity.defn(name="check_gate")
    async def check_gate(self, req: GateRequest) -> GateDecision:
        """Answer permit, wait or deny for attempt `req.attempt`."""
        decision = await self._decide(req)
        if decision.verdict == GateVerdict.WAIT and not decision.vendor_degraded:
            decision.wait_s = spread_wait(decision.wait_s, req.waits, self._rng)
        if activity.in_activity():
            activity.metric_meter().create_counter(
                "awfdrs_gate_answers", "Safety gate answers by verdict"
            ).add(
                1, {"verdict": "vendor_degraded" if decision.vendor_degraded else decision.verdict}
            )
        return decision

    async def _decide(self, req: GateRequest) -> GateDecision:
        degraded_after = self._policies.vendors.for_vendor(req.vendor).degraded_after
        hold = functools.partial(self._maintenance_wait, req)
        registry = await read_registry(self._engine, req, degraded_after, hold)
        if registry.denial:
            return registry.denial  # a kill switch or deactivation, or a maintenance wait
        if registry.degraded:  # a vendor incident holds it: nothing is permitted meanwhile
            return GateDecision(GateVerdict.WAIT, reason=registry.degraded, vendor_degraded=True)
        if req.attempt > req.max_attempts:
            return _deny(f"attempt cap of {req.max_attempts} reached")
        try:
            await self._adopt_legacy_breakers()
            return await self._redis_checks(req, registry.max_callbacks or self._max_callbacks)
        except (RedisError, OSError) as exc:
            log.warning("safety state unavailable: %s", exc)
            return _wait(0, f"safety state unavailable (redis: {type(exc).__name__})")

    def _maintenance_wait(
        self, req: GateRequest, windows: object, incident: dict[str, str | None] | None
    ) -> GateDecision | None:
        """A wait until the covering window's end (re-asked every `maintenance_recheck_s`, so
        an operator ending the window early releases the incident soon)."""
        now = datetime.now(UTC)
        found = covering(
            windows_from_json(windows),
            now,
            workflow=req.source_workflow,
            vendor=req.vendor,
            error_code=(incident or {}).get("error_code"),
            step=(incident or {}).get("step"),
        )
        if not found:
            return None
        window, (_, ends_at) = found[0]
        remaining = (ends_at - now).total_seconds()
        cause = f"maintenance window {window.reason} until {ends_at:%Y-%m-%d %H:%M:%S} UTC"
        return _wait(min(remaining, self._maintenance_recheck_s), cause)

    async def _adopt_legacy_breakers(self) -> None:
        """Carry breakers of untagged keys over once per process, forced states included."""
        if self._legacy_adopted:
            return
        async with self._adopting:
            if self._legacy_adopted:
                return
            try:
                if moved := await self._breaker.adopt_legacy_keys():
                    log.info("adopted %d circuit breaker(s) stored under untagged keys", moved)
            except ResponseError as exc:  # the server refuses it: asking again cannot help
                log.warning("untagged circuit breakers not adopted: %s", exc)
            self._legacy_adopted = True

    async def _redis_checks(self, req: GateRequest, max_callbacks: int) -> GateDecision:
        vendor = self._policies.vendors.for_vendor(req.vendor)
        keys: list[str] = [budget_key(req.tenant_id, req.source_workflow), slots_key(req.tenant_id)]
        args: list[float | str] = [
            self._calls_per_hour,
            max_callbacks,
            round((vendor.call_timeout_s + 15) * 1_000_000),  # outlasts the call it covers
            slot_member(req.incident_id, req.attempt),
        ]
        if req.vendor:
            keys += [breaker_key(req.tenant_id, req.vendor), rate_key(req.tenant_id, req.vendor)]
            # A probe's lease outlasts its call, so only a vanished caller's probe lapses.
            args += acquire_args(vendor.circuit_breaker, probe_lease_s=vendor.call_timeout_s + 15)
            args += gcra_args(
                rate_per_s=vendor.rate_limit_per_s, burst=max(1, int(vendor.rate_limit_per_s))
            )
        permit, wait_us, blocker, before, after = await self._gate(keys=keys, args=args)
        if req.vendor:
            self._breaker.report_transition(keys[2], before, after)
        if permit:
            return GateDecision(GateVerdict.PERMIT, probe=_text(after) == BreakerState.HALF_OPEN)
        return self._explain(_text(blocker), int(wait_us) / 1_000_000, req.vendor)

    def _explain(self, blocker: str, wait_s: float, vendor: str | None) -> GateDecision:
        """The wait answer for whichever check held the call back, naming its cause."""
        # The workflow adds how long it waits: "waiting: stripe circuit open, 28 s".
        if blocker == BreakerState.FORCED_OPEN:
            return _wait(0, f"{vendor} circuit forced open by an operator")
        if blocker == BreakerState.OPEN:
            return replace(_wait(wait_s, f"{vendor} circuit open"), circuit_open=True)
        if blocker == BreakerState.HALF_OPEN:
            return _wait(wait_s, f"{vendor} circuit half-open (probes in flight)")
        if blocker == "rate":
            return _wait(wait_s, f"{vendor} rate limit")
        if blocker == "slots":
            return _wait(wait_s, "tenant's callbacks in flight at their cap")
        return _wait(wait_s, f"hourly budget of {self._calls_per_hour} calls exhausted")

    @activity.defn(name="record_outcome")
    async def record_outcome(self, req: OutcomeRecord) -> str:
        """Count a callback outcome in the vendor's breaker; return the breaker state."""
        if req.outcome == CallOutcome.CANCELLED:
            return "unchanged"  # a cancelled probe's lease simply expires
        if req.outcome == CallOutcome.RETRYABLE and await last_attempt_skipped(
            self._engine, req.tenant_id
        ):
            return "unchanged"  # a dry run called nothing: the vendor did not fail
        return await self.count_call(req)

    async def count_call(self, req: OutcomeRecord) -> str:
        """Count the outcome of a call that was made in the vendor's breaker; its state after."""
        # The callback activity counts its own call, and the workflow counts again only when it
        # got no state back: a reply lost after Redis counted must not count the call twice.
        marker = f"counted:{{{req.tenant_id}}}:{req.attempt_key}"
        if req.attempt_key and not await self._redis.set(marker, 1, nx=True, ex=COUNTED_TTL_S):
            return "unchanged"
        settings = self._policies.vendors.for_vendor(req.vendor).circuit_breaker
        # A 4xx is the client's problem, not the vendor's: the vendor answered.
        return await self._breaker.record(
            breaker_key(req.tenant_id, req.vendor),
            settings,
            success=req.outcome != CallOutcome.RETRYABLE,
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
