"""End to end on the real stack: first-callback latency, an event storm, many open incidents.

    .venv/bin/python -m bench.e2e [--seconds 10] [--storm 100000] [--open 10000] [--plot DIR]
    .venv/bin/python -m bench.e2e --scenarios sustain,floor,scaleout

Starts embedded PostgreSQL, Valkey and Temporal, the API and the worker as processes, and a
local callback server; prints one JSON document, with the naive design (one signal-with-start
per event) and the bare-Temporal floor (bench/floor.py) measured in the same run. On a
terminal, a progress bar per load runs on stderr; `--plot DIR` also writes first-callback
latency charts (PNG) there; `--py-spy FILE` records the worker's profile (py-spy on PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import e2e_rates
from bench.e2e_scenarios import Stack, naive_storm, open_incidents, storm
from bench.ingest import ADMIN, stack_env, start_api_and_baseline
from devstack.postgres import EmbeddedPostgres
from devstack.process import spawn, stop
from devstack.temporal import EmbeddedTemporal
from devstack.valkey import EmbeddedValkey
from models.migrate import upgrade_database

# The fairness caps bound one tenant's share of the worker (600 new incidents a minute by
# default): a bench of the worker's capacity, driven by one tenant, lifts them, or it measures
# the cap instead. A run whose incidents were deferred all the same says so (`deferred`).
UNCAPPED = {
    "ingest_rate_per_s": 1_000_000,
    "max_open_incidents": 10_000_000,
    "max_new_incidents_per_minute": 1_000_000,
    "max_concurrent_callbacks": 100_000,
}


async def setup(api: str) -> dict[str, str]:
    """A tenant without an ingest rate limit or fairness caps."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=api) as http:
        created = await http.post(
            "/api/v1/tenants", json={"name": f"e2e-{uuid.uuid4().hex[:6]}"}, headers=admin
        )
        tenant = created.raise_for_status().json()
        caps = await http.patch(f"/api/v1/tenants/{tenant['id']}", json=UNCAPPED, headers=admin)
        caps.raise_for_status()
    return {"Authorization": f"Bearer {tenant['api_key']}"}


async def run_scenarios(
    args: argparse.Namespace, stack: Stack, baseline_url: str, samples: dict[str, list[float]]
) -> dict[str, Any]:
    """Run the scenarios `--scenarios` names, in order; raw latencies go into `samples`."""
    wanted = set(args.scenarios.split(","))
    results: dict[str, Any] = {}
    if "latency" in wanted:
        for rate in args.rates:
            name = f"first_callback_at_{rate}_per_s"
            measure = e2e_rates.awfdrs_measure(stack, args.seconds)
            results[name] = await e2e_rates.measured(
                measure, rate, stack.worker_pids, stack.server_processes()
            )
            samples[name] = results[name].pop("latencies_s")
    if "sustain" in wanted:
        measure = e2e_rates.awfdrs_measure(stack, args.step_seconds)
        results["awfdrs_sustained"] = await e2e_rates.step_rates(
            measure, args.step_rates, stack.worker_pids, "awfdrs", samples, stack.server_processes()
        )
    if "floor" in wanted:
        results["floor"] = await floor_scenario(args, stack)
    if "scaleout" in wanted:
        results["scaleout"] = await scaleout(args, stack)
    if "storm" in wanted:
        results["storm"] = await storm(stack, args.storm)
        results["naive_storm"] = await naive_storm(baseline_url, args.naive_events)
    if "open" in wanted:
        results["open_incidents"] = await open_incidents(stack, args.open, args.open_timeout)
    return results


async def floor_scenario(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    """Step the bare-Temporal floor's rates for each number of local activities."""
    queue = f"bench-floor-{uuid.uuid4().hex[:6]}"
    argv = [sys.executable, "-m", "bench.floor", "--address", stack.temporal, "--task-queue", queue]
    # The floor's workflows run as AWFDRS's do: both in the sandbox, or both without it.
    sandbox = os.environ.get("AWFDRS_WORKER_WORKFLOW_SANDBOX", "true").lower()
    argv += ["--sandbox", "false" if sandbox in ("false", "0", "no", "off") else "true"]
    worker = spawn(argv, log_path=stack.work / "floor.log", env=dict(os.environ))
    try:
        await asyncio.sleep(3)
        results = {}
        for locals_ in args.floor_locals:
            measure = e2e_rates.floor_measure(stack.temporal, queue, args.step_seconds, locals_)
            label = f"floor_{locals_}_local_activities"
            servers = {**stack.server_processes(), "worker": [worker.pid]}
            results[label] = await e2e_rates.step_rates(
                measure, args.floor_rates, [worker.pid], label, servers=servers
            )
        return results
    finally:
        stop(worker)


async def scaleout(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    """Throughput above saturation with one worker process, then with a second one added."""
    measure = e2e_rates.awfdrs_measure(stack, args.step_seconds)
    one = await e2e_rates.measured(
        measure, args.saturate, stack.worker_pids, stack.server_processes()
    )
    extra = start_worker(stack.env, stack.work, len(stack.worker_pids))
    stack.worker_pids.append(extra.pid)
    try:
        await asyncio.sleep(3)
        two = await e2e_rates.measured(
            measure, args.saturate, stack.worker_pids, stack.server_processes()
        )
    finally:
        stop(extra)
        stack.worker_pids.remove(extra.pid)
    one.pop("latencies_s"), two.pop("latencies_s")
    ratio = (two["throughput_per_s"] or 0) / (one["throughput_per_s"] or 1)
    return {
        "one_worker": one,
        "two_workers": two,
        "throughput_ratio": round(ratio, 3),
        "per_worker_efficiency": round(ratio / 2, 3),
    }


def start_worker(env: dict[str, str], work: Path, index: int) -> subprocess.Popen[bytes]:
    """One worker process, logging to its own file."""
    argv = [sys.executable, "-m", "worker"]
    return spawn(argv, log_path=work / f"worker-{index}.log", env={**os.environ, **env})


async def measure(
    args: argparse.Namespace,
    urls: dict[str, str],
    work: Path,
    samples: dict[str, list[float]],
    servers: dict[str, list[int]],
) -> dict[str, Any]:
    """Start the API, baseline and worker processes, run the scenarios, stop the processes.

    `servers` names the processes of the servers already running (PostgreSQL, …)."""
    env = {**stack_env(urls), "AWFDRS_REMEDIATION_CALLS_PER_HOUR": "1000000"}
    api, api_url, base, base_url = start_api_and_baseline(env, work)
    # The sandbox re-imports the workflow module for every run; an installed package has
    # its bytecode compiled, so measure that and not a recompile under PYTHONDONTWRITEBYTECODE.
    compileall.compile_dir(Path(__file__).parent.parent / "workflows", quiet=1)
    workers = [start_worker(env, work, n) for n in range(args.workers)]
    profiler = start_profiler(args.py_spy, workers[0].pid, work)
    try:
        stack = Stack(api_url, await setup(api_url), workers[0].pid, urls["database"])
        stack.worker_pids = [w.pid for w in workers]
        stack.temporal, stack.env, stack.work = urls["temporal"], env, work
        stack.servers = {**servers, "api": [api.pid]}
        await asyncio.sleep(3)  # the worker connects and starts polling
        results = await run_scenarios(args, stack, base_url, samples)
    finally:
        if profiler is not None:
            stop(profiler, sig=signal.SIGINT, timeout=60)
        for proc in (api, base, *workers):
            stop(proc)
    results["goals"] = goals(results)
    return results


def start_profiler(out: Path | None, pid: int, work: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the worker into `out` (collapsed stacks) until stopped, if asked."""
    if out is None:
        return None
    py_spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
    argv = [py_spy, "record", "-p", str(pid), "-r", "50", "-f", "raw", "-o", str(out)]
    return spawn(argv, log_path=work / "py-spy.log")


def goals(results: dict[str, Any]) -> dict[str, bool]:
    """Compare the measured figures with the goals of the scenarios that ran."""
    met: dict[str, bool] = {}
    if latency := results.get("first_callback_at_5.0_per_s"):
        met["first_callback_p50_le_250ms_at_5_per_s"] = latency["p50_ms"] <= 250
        met["first_callback_p99_le_1s_at_5_per_s"] = latency["p99_ms"] <= 1000
    if latency := results.get("first_callback_at_20.0_per_s"):
        met["first_callback_p99_le_1s_at_20_per_s"] = e2e_rates.sustained(latency)
    sustained, floor = results.get("awfdrs_sustained"), results.get("floor")
    if sustained and floor:
        best = max(f["highest_rate_p99_le_1s"] for f in floor.values())
        ratio = sustained["highest_rate_p99_le_1s"] / best if best else 0.0
        results["sustained_rate_over_floor"] = round(ratio, 3)
        met["sustained_rate_ge_half_the_floor"] = ratio >= 0.5
    if storm_result := results.get("storm"):
        met["storm_ge_5000_events_per_s"] = storm_result["ingest_events_per_s"] >= 5000
    if opened := results.get("open_incidents"):
        met["all_open_incidents_backing_off"] = opened["backing_off"] >= opened["incidents"]
        met["worker_rss_le_1GiB_with_open_incidents"] = opened["worker_rss_mib_peak"] <= 1024
    return met


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rates", type=rates, default=[5.0, 20.0], help="latency: e.g. 5,20")
    parser.add_argument("--step-seconds", type=float, default=20, help="per stepped rate")
    parser.add_argument("--step-rates", type=rates, default=[10.0, 15.0, 20.0, 25.0, 30.0])
    parser.add_argument("--floor-rates", type=rates, default=[10.0, 20.0, 30.0, 40.0, 50.0])
    parser.add_argument(
        "--floor-locals",
        type=lambda v: [int(n) for n in v.split(",")],
        default=[7],
        help="local activities of the floor workflow, e.g. 7,4",
    )
    parser.add_argument("--saturate", type=float, default=40, help="scaleout: arrival rate")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--py-spy", type=Path, metavar="FILE", help="profile the worker")
    parser.add_argument("--storm", type=int, default=100_000)
    parser.add_argument("--naive-events", type=int, default=3000)
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--open-timeout", type=float, default=600)
    parser.add_argument(
        "--scenarios",
        default="latency,storm,open",
        help="comma-separated subset of latency, sustain, floor, scaleout, storm, open",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="DIR",
        help="write first-callback latency charts (PNG) to DIR; needs matplotlib (dev extra)",
    )
    return parser.parse_args()


def rates(value: str) -> list[float]:
    """A comma-separated list of arrival rates."""
    return [float(rate) for rate in value.split(",")]


def chart_writer() -> Callable[[dict[str, list[float]], Path], list[Path]]:
    """The `--plot` writer, imported before the run so a missing matplotlib fails at once."""
    from bench.plots import write_latency_charts  # matplotlib only when asked for

    return write_latency_charts


def main() -> None:
    """Start the servers, measure, print JSON."""
    args = parse_args()
    write_charts = chart_writer() if args.plot is not None else None
    work = Path(tempfile.mkdtemp(prefix="awfdrs-e2e-"))
    work.chmod(0o755)
    pg = EmbeddedPostgres(work / "pg")
    valkey = EmbeddedValkey(work / "valkey", durable=False)
    temporal = EmbeddedTemporal(work / "temporal", headless=True)
    for server in (pg, valkey, temporal):
        server.start()
    try:
        upgrade_database(pg.url.replace("postgresql://", "postgresql+asyncpg://"))
        urls = {"database": pg.url, "redis": valkey.url, "temporal": temporal.address}
        samples: dict[str, list[float]] = {}
        servers = {"postgres": pg.pid, "valkey": valkey.pid, "temporal": temporal.pid}
        running = {name: [pid] for name, pid in servers.items() if pid is not None}
        results = asyncio.run(measure(args, urls, work, samples, running))
    finally:
        for server in (temporal, valkey, pg):
            server.stop()
    report = {
        "benchmark": "e2e",
        # The report stays what it was with or without `--plot`: charts are not results.
        "args": {k: v for k, v in vars(args).items() if k not in ("plot", "py_spy")},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(n, 2) for n in os.getloadavg()],
        },
        **results,
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    if write_charts is not None:
        for path in write_charts(samples, args.plot):
            sys.stderr.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
