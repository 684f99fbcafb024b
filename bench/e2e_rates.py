"""Arrival rates for `bench/e2e.py`: fixed rates, the highest sustainable one, and the floor's.

A rate is sustained when every incident of the run reached its first callback and the p99
stayed ≤ 1 s. Each run also reports the worker processes' CPU seconds and the load average,
since the two cores are shared with everything else on the box, and, given the stack's
servers, the CPU per incident of each (`cpu_ms_per_incident_by_process`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.e2e_scenarios import Stack, first_callback_latency
from bench.floor import floor_latency
from bench.process_cpu import per_incident_ms, tree_cpu_s

P99_LIMIT_MS = 1000.0
# A worker process using less CPU than this in two seconds has no backlog left.
IDLE_CPU_S = 0.1
Measure = Callable[[float], Awaitable[dict[str, Any]]]


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds the processes used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return round(total / ticks, 2)


def sustained(run: dict[str, Any]) -> bool:
    """Every incident reached its callback undeferred and the p99 stayed within the limit."""
    p99 = run.get("p99_ms")
    complete = run["reached_callback"] == run["incidents"] and not run.get("deferred")
    return complete and p99 is not None and p99 <= P99_LIMIT_MS


async def settle(pids: Sequence[int], timeout: float = 600) -> float:
    """Wait until the worker processes are idle (the last run's backlog is done); seconds."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        before = cpu_seconds(pids)
        await asyncio.sleep(2)
        if cpu_seconds(pids) - before < IDLE_CPU_S * len(pids):
            break
    return round(time.perf_counter() - started, 1)


Servers = Mapping[str, Sequence[int]]  # what each server is → its processes


async def measured(
    measure: Measure, rate: float, pids: Sequence[int], servers: Servers | None = None
) -> dict[str, Any]:
    """One run at `rate`, from idle workers, with the CPU they used and the load around it.

    `servers` names the stack's processes (server → pids; their children count with them) to
    split its CPU by."""
    await settle(pids)
    load_before, cpu_before = os.getloadavg()[0], cpu_seconds(pids)
    servers_before = tree_cpu_s(servers or {})
    run = await measure(rate)
    await settle(pids)  # the CPU of the run's incidents until they are all done
    cpu = cpu_seconds(pids) - cpu_before
    reached = run["reached_callback"]
    run.update(
        worker_cpu_s=round(cpu, 2),
        worker_cpu_ms_per_incident=round(cpu * 1000 / reached, 2) if reached else None,
        load_average_1m=[round(load_before, 2), round(os.getloadavg()[0], 2)],
    )
    if servers and reached:
        run["cpu_ms_per_incident_by_process"] = per_incident_ms(
            servers_before, tree_cpu_s(servers), reached
        )
    return run


async def step_rates(
    measure: Measure,
    rates: Sequence[float],
    pids: Sequence[int],
    label: str,
    samples: dict[str, list[float]] | None = None,
    servers: Servers | None = None,
) -> dict[str, Any]:
    """Run `rates` in ascending order until one is not sustained; report the highest that was.

    The latencies of the highest sustained run go into `samples` (for `--plot`), if given.
    """
    runs: dict[str, Any] = {}
    best, best_latencies = 0.0, list[float]()
    # Unreported: a cold worker's first incidents pay for imports, connections and schemas.
    await measure(min(rates) / 2)
    for rate in sorted(rates):
        run = await measured(measure, rate, pids, servers)
        latencies = run.pop("latencies_s", [])
        runs[f"{rate:g}"] = run
        sys.stderr.write(f"{label} at {rate:g}/s: p99 {run['p99_ms']} ms\n")
        if not sustained(run):
            break
        best, best_latencies = rate, latencies
    if samples is not None and best:  # a fixed-rate run of the same rate keeps its chart
        samples.setdefault(f"first_callback_at_{best}_per_s", best_latencies)
    return {"runs": runs, "highest_rate_p99_le_1s": best}


def awfdrs_measure(stack: Stack, seconds: float) -> Measure:
    """First callback through AWFDRS at a rate, for `seconds`."""

    async def measure(rate: float) -> dict[str, Any]:
        return await first_callback_latency(stack, rate, seconds)

    return measure


def floor_measure(address: str, task_queue: str, seconds: float, locals_: int) -> Measure:
    """First callback of the bare-Temporal floor with `locals_` local activities."""

    async def measure(rate: float) -> dict[str, Any]:
        return await floor_latency(address, task_queue, rate, seconds, locals_)

    return measure
