"""Rate-limit units leased from Redis in blocks per key, so most admissions skip the round trip.

The shared GCRA limiter (rules/rate_limit.py) stays the one authority: a process takes up to a
block of units in one call and spends them locally for at most LEASE_TTL_S. Every admitted
unit was charged in Redis first, so no key is admitted more than its rate over time. The
tolerance is the units a process holds, at most `lease_block(burst) - 1` (1% of the burst,
at most MAX_BLOCK - 1): each process may admit that many units up to LEASE_TTL_S after they
were charged (a burst above `burst` by at most that much, per process), and units it holds
unused count as spent for every process (a refusal up to that many units early; units held
when a request needs more than them are spent too). A key whose burst is under 1 / LEASE_SHARE
is never leased: its admissions are exactly the shared limiter's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rules.rate_limit import RateDecision, RateLimiter

LEASE_SHARE = 0.01
MAX_BLOCK = 50
LEASE_TTL_S = 1.0
MAX_KEYS = 10_000
ADMITTED = RateDecision(True, 0.0)


def lease_block(burst: int) -> int:
    """Units taken per round trip for a key with this burst (1: no lease)."""
    return max(1, min(MAX_BLOCK, int(burst * LEASE_SHARE)))


@dataclass
class _Lease:
    units: int
    expires: float


class RateLeases:
    """Admits units per key against a `RateLimiter`, leasing them in blocks."""

    def __init__(self, limiter: RateLimiter, *, clock: Callable[[], float] = time.monotonic):
        self._limiter = limiter
        self._clock = clock
        self._leases: dict[str, _Lease] = {}

    async def acquire(
        self, key: str, *, rate_per_s: float, burst: int, quantity: int = 1
    ) -> RateDecision:
        """Admit `quantity` units: from this process's lease when it holds them, else Redis's."""
        quantity = max(quantity, 1)  # as the limiter: an empty batch still costs one unit
        held = self._take(key, quantity)
        if held == quantity:
            return ADMITTED
        need = quantity - held
        granted, wait_s = await self._limiter.acquire_up_to(
            key, rate_per_s=rate_per_s, burst=burst, need=need, up_to=need + lease_block(burst) - 1
        )
        if not granted:
            return RateDecision(False, wait_s)
        self._keep(key, granted - need)
        return ADMITTED

    def _take(self, key: str, quantity: int) -> int:
        """Take `quantity` units from the key's live lease, or all it holds if fewer."""
        # Taken before any await: two requests of one process never spend the same unit.
        lease = self._leases.get(key)
        if lease is None or lease.expires <= self._clock():
            return 0
        taken = min(lease.units, quantity)
        lease.units -= taken
        return taken

    def _keep(self, key: str, units: int) -> None:
        """Hold `units` just charged; they join a live lease (and its earlier expiry)."""
        if units <= 0:
            return
        now = self._clock()
        lease = self._leases.get(key)
        if lease is not None and lease.expires > now:
            lease.units += units
            return
        if len(self._leases) >= MAX_KEYS:
            self._leases.clear()  # bounded memory: at worst every holder starts a new block
        self._leases[key] = _Lease(units, now + LEASE_TTL_S)
