"""End to end on the real stack: first-callback latency, an event storm, many open incidents.

    .venv/bin/python -m bench.e2e [--seconds 10] [--storm 100000] [--open 10000] [--plot DIR]

Starts embedded PostgreSQL, Valkey and Temporal, the API and the worker as processes, and a
local callback server; prints one JSON document, with the naive design (one signal-with-start
per event) measured in the same run. On a terminal, a progress bar per load runs on stderr;
`--plot DIR` also writes first-callback latency charts (PNG) there.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import platform
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.e2e_scenarios import Stack, first_callback_latency, naive_storm, open_incidents, storm
from bench.ingest import ADMIN, stack_env, start_api_and_baseline
from devstack.postgres import EmbeddedPostgres
from devstack.process import spawn, stop
from devstack.temporal import EmbeddedTemporal
from devstack.valkey import EmbeddedValkey
from models.migrate import upgrade_database


async def setup(api: str) -> dict[str, str]:
    """A tenant with an unbounded ingest rate."""
    async with httpx.AsyncClient(base_url=api) as http:
        tenant = (
            await http.post(
                "/api/v1/tenants",
                json={"name": f"e2e-{uuid.uuid4().hex[:6]}", "ingest_rate_per_s": 1_000_000},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
        ).json()
    return {"Authorization": f"Bearer {tenant['api_key']}"}


async def run_scenarios(
    args: argparse.Namespace, stack: Stack, baseline_url: str, samples: dict[str, list[float]]
) -> dict[str, Any]:
    """Run the scenarios `--scenarios` names, in order; raw latencies go into `samples`."""
    wanted = set(args.scenarios.split(","))
    results: dict[str, Any] = {}
    if "latency" in wanted:
        for rate in (5.0, 20.0):
            name = f"first_callback_at_{rate}_per_s"
            samples[name] = []
            results[name] = await first_callback_latency(stack, rate, args.seconds, samples[name])
    if "storm" in wanted:
        results["storm"] = await storm(stack, args.storm)
        results["naive_storm"] = await naive_storm(baseline_url, args.naive_events)
    if "open" in wanted:
        results["open_incidents"] = await open_incidents(stack, args.open, args.open_timeout)
    return results


async def measure(
    args: argparse.Namespace, urls: dict[str, str], work: Path, samples: dict[str, list[float]]
) -> dict[str, Any]:
    """Start the API, baseline and worker processes, run the scenarios, stop the processes."""
    env = {**stack_env(urls), "AWFDRS_REMEDIATION_CALLS_PER_HOUR": "1000000"}
    api, api_url, base, base_url = start_api_and_baseline(env, work)
    # The sandbox re-imports the workflow module for every run; an installed package has
    # its bytecode compiled, so measure that and not a recompile under PYTHONDONTWRITEBYTECODE.
    compileall.compile_dir(Path(__file__).parent.parent / "workflows", quiet=1)
    worker = spawn(
        [sys.executable, "-m", "worker"], log_path=work / "worker.log", env={**os.environ, **env}
    )
    try:
        stack = Stack(api_url, await setup(api_url), worker.pid, urls["database"])
        await asyncio.sleep(3)  # the worker connects and starts polling
        results = await run_scenarios(args, stack, base_url, samples)
    finally:
        for proc in (api, base, worker):
            stop(proc)
    results["goals"] = goals(results)
    return results


def goals(results: dict[str, Any]) -> dict[str, bool]:
    """Compare the measured figures with the goals of the scenarios that ran."""
    met: dict[str, bool] = {}
    if latency := results.get("first_callback_at_5.0_per_s"):
        met["first_callback_p50_le_250ms_at_5_per_s"] = latency["p50_ms"] <= 250
        met["first_callback_p99_le_1s_at_5_per_s"] = latency["p99_ms"] <= 1000
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
    parser.add_argument("--storm", type=int, default=100_000)
    parser.add_argument("--naive-events", type=int, default=3000)
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--open-timeout", type=float, default=600)
    parser.add_argument(
        "--scenarios",
        default="latency,storm,open",
        help="comma-separated subset of latency, storm, open",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="DIR",
        help="write first-callback latency charts (PNG) to DIR; needs matplotlib (dev extra)",
    )
    return parser.parse_args()


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
        results = asyncio.run(measure(args, urls, work, samples))
    finally:
        for server in (temporal, valkey, pg):
            server.stop()
    report = {
        "benchmark": "e2e",
        # The report stays what it was with or without `--plot`: charts are not results.
        "args": {name: value for name, value in vars(args).items() if name != "plot"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **results,
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    if write_charts is not None:
        for path in write_charts(samples, args.plot):
            sys.stderr.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
