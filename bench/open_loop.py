"""The open-loop driver of the first-callback benches: fixed arrival rate, latency from intended.

New incidents are sent on a fixed schedule, whatever the system under test does; each latency
runs from the incident's *intended* send time to the first call its callback server receives,
so a stall shows up as latency instead of as a slower send rate.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.load import percentile
from devstack.http_target import Call, CallbackServer
from devstack.progress import following, progress_board

# How long a run waits after its last send for every first callback (a saturated rate queues).
DRAIN_TIMEOUT_S = 300


async def drive(
    server: CallbackServer,
    label: str,
    rate: float,
    seconds: float,
    send: Callable[[int], Awaitable[str]],
) -> dict[str, Any]:
    """Call `send(n)` (it returns the incident key) `rate` times a second for `seconds`."""
    first_call: dict[str, float] = {}

    async def on_call(call: Call) -> None:
        first_call.setdefault(str(call.body.get("incident_key")), time.perf_counter())

    server.on_call = on_call
    intended: dict[str, float] = {}
    start = time.perf_counter() + 0.5

    async def fire(n: int) -> None:
        at = start + n / rate
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        intended[await send(n)] = at

    total = int(rate * seconds)
    with progress_board(sys.stderr) as board:
        bar = board.add(f"{label} at {rate:g}/s", total=total)
        async with following(bar, lambda: (len(first_call), f"{len(intended)} sent")):
            await asyncio.gather(*(fire(n) for n in range(total)))
            deadline = time.perf_counter() + DRAIN_TIMEOUT_S
            while len(first_call) < len(intended) and time.perf_counter() < deadline:
                await asyncio.sleep(0.2)
    return latency_figures(intended, first_call, start)


def latency_figures(
    intended: dict[str, float], first_call: dict[str, float], start: float
) -> dict[str, Any]:
    """p50/p99 from intended send to first callback, and the rate incidents got through."""
    latencies = [first_call[k] - at for k, at in intended.items() if k in first_call]
    done = [first_call[k] for k in intended if k in first_call]
    span = max(done) - start if done else 0.0
    return {
        "incidents": len(intended),
        "reached_callback": len(latencies),
        "p50_ms": percentile(latencies, 0.5) if latencies else None,
        "p99_ms": percentile(latencies, 0.99) if latencies else None,
        "throughput_per_s": round(len(done) / span, 2) if span > 0 else None,
        "latencies_s": latencies,
    }
