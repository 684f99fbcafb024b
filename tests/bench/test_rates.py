"""`bench/e2e.py --scenarios sustain,floor`: stepping rates to the highest sustainable one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

from bench import e2e_rates
from bench.open_loop import latency_figures


def _run(rate: float, p99_ms: float, *, reached: int | None = None) -> dict[str, Any]:
    incidents = int(rate * 10)
    return {
        "incidents": incidents,
        "reached_callback": incidents if reached is None else reached,
        "p50_ms": p99_ms / 2,
        "p99_ms": p99_ms,
        "latencies_s": [rate / 1000],
    }


async def test_steps_stop_at_the_first_rate_that_is_not_sustained() -> None:
    p99 = {2.5: 5000.0, 5.0: 300.0, 10.0: 900.0, 15.0: 4000.0, 20.0: 200.0}
    asked: list[float] = []

    async def measure(rate: float) -> dict[str, Any]:
        asked.append(rate)
        return _run(rate, p99[rate])

    samples: dict[str, list[float]] = {"first_callback_at_5.0_per_s": [9.9]}
    result = await e2e_rates.step_rates(measure, [15, 5, 10, 20], [os.getpid()], "t", samples)
    # An unreported warm-up at half the lowest rate, then ascending; 20/s is never tried.
    assert asked == [2.5, 5, 10, 15]
    assert result["highest_rate_p99_le_1s"] == 10
    assert set(result["runs"]) == {"5", "10", "15"}
    assert "latencies_s" not in result["runs"]["10"]
    assert samples["first_callback_at_10_per_s"] == [0.01]
    assert samples["first_callback_at_5.0_per_s"] == [9.9]  # a fixed-rate run keeps its chart


def test_a_run_with_a_missed_callback_is_not_sustained() -> None:
    assert e2e_rates.sustained(_run(5, 300))
    assert not e2e_rates.sustained(_run(5, 300, reached=49))
    assert not e2e_rates.sustained(_run(5, 1000.5))


def test_a_run_the_tenant_caps_deferred_is_not_sustained() -> None:
    # Deferred incidents measure the tenant's fairness cap, not the worker.
    assert e2e_rates.sustained(_run(5, 300) | {"deferred": 0})
    assert not e2e_rates.sustained(_run(5, 300) | {"deferred": 3})


async def test_a_run_splits_its_cpu_by_server() -> None:
    # A child burns 0.6 s of CPU once told to, says so, then idles; another named pid does
    # nothing, and the bench's own process is not named, so it does not count.
    burn = (
        "import sys, time\nsys.stdin.readline()\n"
        "while time.process_time() < 0.6: pass\nprint('done', flush=True)\ntime.sleep(60)"
    )
    servers: dict[str, list[int]] = {"idle": [1 << 22]}
    argv = [sys.executable, "-c", burn]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
        servers["busy"] = [child.pid]

        async def measure(rate: float) -> dict[str, Any]:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(b"go\n"), child.stdin.flush()
            assert await asyncio.to_thread(child.stdout.readline) == b"done\n"
            return _run(rate, 100.0)

        try:
            run = await e2e_rates.measured(measure, 10, [os.getpid()], servers)
        finally:
            child.kill()
    split = run["cpu_ms_per_incident_by_process"]
    assert split["idle"] == 0
    assert 5 <= split["busy"] <= 6.5, split  # 0.6 s less its start-up, over 100 incidents
    assert split["total"] == split["busy"]


def test_latency_runs_from_the_intended_send_time() -> None:
    intended = {"a": 10.0, "b": 10.5, "c": 11.0}
    first_call = {"a": 10.2, "b": 11.0}
    figures = latency_figures(intended, first_call, start=10.0)
    assert figures["reached_callback"] == 2 and figures["incidents"] == 3
    assert figures["p99_ms"] == 500.0
    assert figures["throughput_per_s"] == 2.0  # 2 callbacks in the 1 s since the start
