"""Ingest throughput and latency, against the ceiling and the naive design, in one run.

    .venv/bin/python -m bench.ingest [--seconds 10] [--concurrency 16] [--apis 2]
        [--dispatcher process|inline] [--scenarios ...] [--profile OUT.prof]

Starts embedded PostgreSQL, Valkey and Temporal, runs the AWFDRS API (`--apis` processes),
the outbox dispatcher (its own process, or inside each API) and the baseline app as real
processes, drives each with a closed-loop load generator at fixed concurrency, and prints one
JSON document: events/s and latency per scenario, the CPU seconds each group of processes
spent meanwhile, the load average, and the ratios the goals are stated in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.ingest_stack import ADMIN, CpuMeter, Stack, setup_tenant, start_stack
from bench.ingest_stack import stack_env as _stack_env
from bench.load import drive
from devstack.postgres import EmbeddedPostgres
from devstack.temporal import EmbeddedTemporal
from devstack.valkey import EmbeddedValkey
from models.migrate import upgrade_database
from vocabulary import EventType

__all__ = ["ADMIN", "encode_singles", "event", "stack_env", "start_api_and_baseline"]
SCENARIOS = ("ceiling", "single", "batch", "inline", "scale", "naive")


def event(workflow: str = "billing-sync") -> dict[str, Any]:
    """One failure event with a unique idempotency key."""
    return {
        "idempotency_key": uuid.uuid4().hex,
        "workflow": workflow,
        "event_type": EventType.STEP_FAILED,
        "step": "charge-card",
        "vendor": "stripe",
        "occurred_at": "2026-11-26T10:00:00Z",
        "error": {"code": "VENDOR_TIMEOUT", "message": "upstream timed out", "http_status": 504},
        "payload": {"invoice": "inv-881"},
    }


def encode_singles(count: int) -> list[bytes]:
    """Pre-encode `count` distinct events so the load generator spends no CPU on them."""
    return [json.dumps(event()).encode() for _ in range(count)]


def encode_batches(count: int) -> list[bytes]:
    """Pre-encode `count` batches of 1,000 distinct events."""
    return [json.dumps({"events": [event() for _ in range(1000)]}).encode() for _ in range(count)]


def stack_env(urls: dict[str, str], dispatcher: str = "inline") -> dict[str, str]:
    """Environment of the API, worker and baseline processes (bench/e2e.py uses it too)."""
    return _stack_env(urls, dispatcher)


def start_api_and_baseline(
    env: dict[str, str], work: Path
) -> tuple[subprocess.Popen[bytes], str, subprocess.Popen[bytes], str]:
    """Start one API (dispatcher inline) and the baseline app; return them and their URLs."""
    stack = start_stack({**env, "AWFDRS_DISPATCHER": "inline"}, work, apis=1, profile=None)
    return stack.apis[0], stack.api_urls[0], stack.others[-1], stack.base_url


class Runner:
    """Runs scenarios against a started stack, metering CPU around each."""

    def __init__(self, stack: Stack, meter: CpuMeter, args: argparse.Namespace) -> None:
        self.stack, self.meter, self.args = stack, meter, args
        self.headers: dict[str, str] = {}

    async def run(self, url: str | list[str], bodies: list[bytes], **load: Any) -> dict[str, Any]:
        """Drive `url` with `bodies`; add the CPU each group spent meanwhile."""
        self.meter.start()
        result = await drive(url, bodies, seconds=self.args.seconds, **load)
        return {**result, **self.meter.read()}

    def singles(self) -> list[bytes]:
        """Enough distinct events for one scenario at up to 5,000 a second."""
        return encode_singles(int(self.args.seconds * 5000))

    async def single(self, apis: int, *, inline: bool = False) -> dict[str, Any]:
        """`POST /events`, one event per request, spread over the first `apis` processes."""
        servers = [self.stack.inline_url or ""] if inline else self.stack.api_urls[:apis]
        urls = [f"{url}/api/v1/events" for url in servers]
        conc = self.args.concurrency * apis
        return await self.run(urls, self.singles(), headers=self.headers, concurrency=conc)

    async def batch(self, apis: int, *, inline: bool = False) -> dict[str, Any]:
        """`POST /events/batch` with 1,000 events per request."""
        servers = [self.stack.inline_url or ""] if inline else self.stack.api_urls[:apis]
        urls = [f"{url}/api/v1/events/batch" for url in servers]
        return await self.run(
            urls,
            encode_batches(int(self.args.seconds * 40 * apis)),
            headers=self.headers,
            concurrency=max(2, self.args.concurrency // 4) * apis,
            events_per_request=1000,
        )


async def scenarios(runner: Runner, wanted: set[str]) -> dict[str, Any]:
    """The ceiling, AWFDRS single and batched on one and on several API processes, naive."""
    base, conc = runner.stack.base_url, runner.args.concurrency
    apis = len(runner.stack.api_urls)
    results: dict[str, Any] = {}
    if "ceiling" in wanted:
        results["ceiling_bare_insert"] = await runner.run(
            f"{base}/ceiling", runner.singles(), headers={}, concurrency=conc
        )
    if "single" in wanted:
        results["awfdrs_single"] = await runner.single(1)
    if "batch" in wanted:
        results["awfdrs_batch_1000"] = await runner.batch(1)
    if "scale" in wanted and apis > 1:
        results[f"awfdrs_single_{apis}_apis"] = await runner.single(apis)
        results[f"awfdrs_batch_1000_{apis}_apis"] = await runner.batch(apis)
    if "inline" in wanted and runner.stack.inline_url:
        # The same API with the dispatcher inside it (AWFDRS_DISPATCHER=inline), as before;
        # the dispatcher process is stopped first, so that only the API's own drains the outbox.
        runner.stack.stop_dispatcher()
        results["awfdrs_single_inline_dispatcher"] = await runner.single(1, inline=True)
        results["awfdrs_batch_1000_inline_dispatcher"] = await runner.batch(1, inline=True)
    if "naive" in wanted:
        results["naive_signal_per_event"] = await runner.run(
            f"{base}/naive", runner.singles(), headers={}, concurrency=conc
        )
    return results


def _per_api_cpu_s(result: dict[str, Any], seconds: float) -> float | None:
    """Events stored per CPU second the API processes spent."""
    cpu = result.get("api_cpu_s")
    return round(result["events_per_s"] * seconds / cpu, 1) if cpu else None


def ratios(results: dict[str, Any], apis: int, seconds: float) -> dict[str, Any]:
    """The figures the goals are stated in, for the scenarios that ran."""
    out: dict[str, Any] = {}
    single, ceiling = results.get("awfdrs_single"), results.get("ceiling_bare_insert")
    if single and ceiling:
        out["single_vs_ceiling"] = round(single["events_per_s"] / ceiling["events_per_s"], 3)
        # The same comparison in CPU per event, which a shared machine disturbs less.
        if single["api_cpu_s"] and ceiling["baseline_cpu_s"]:
            out["single_vs_ceiling_cpu_per_event"] = round(
                (single["api_cpu_s"] / single["requests"])
                / (ceiling["baseline_cpu_s"] / ceiling["requests"]),
                2,
            )
    if single and (naive := results.get("naive_signal_per_event")):
        out["single_vs_naive"] = round(single["events_per_s"] / naive["events_per_s"], 2)
    for name in ("awfdrs_single", "awfdrs_batch_1000"):
        if (own := results.get(name)) and (inline := results.get(f"{name}_inline_dispatcher")):
            out[f"{name}_vs_inline_dispatcher"] = round(
                own["events_per_s"] / inline["events_per_s"], 3
            )
        one, many = results.get(name), results.get(f"{name}_{apis}_apis")
        if one and many:
            speedup = many["events_per_s"] / one["events_per_s"]
            out[f"{name}_{apis}_apis_vs_1"] = round(speedup, 3)
            # Of the ideal `apis`-fold speed-up, how much the extra processes delivered.
            out[f"{name}_scaling_efficiency"] = round(speedup / apis, 3)
            out[f"{name}_events_per_api_cpu_s"] = [
                _per_api_cpu_s(one, seconds),
                _per_api_cpu_s(many, seconds),
            ]
    return out


def goals(results: dict[str, Any], ratio: dict[str, Any]) -> dict[str, bool]:
    """Issue 18's intake goals, for the scenarios that ran."""
    met: dict[str, bool] = {}
    if "single_vs_ceiling" in ratio:
        met["single_vs_ceiling_ge_0.5"] = ratio["single_vs_ceiling"] >= 0.5
    if batch := results.get("awfdrs_batch_1000"):
        met["batch_ge_20000_events_per_s"] = batch["events_per_s"] >= 20_000
    return met


async def measure(args: argparse.Namespace, urls: dict[str, str], work: Path) -> dict[str, Any]:
    """Start the processes, run every wanted scenario, stop the processes."""
    env = {**os.environ, **_stack_env(urls, args.dispatcher)}
    inline = "inline" in args.scenarios and args.dispatcher == "process"
    stack = start_stack(env, work, apis=args.apis, profile=args.profile, inline=inline)
    try:
        groups = {"api": [proc.pid for proc in stack.apis], "baseline": [stack.others[-1].pid]}
        if inline:  # metered with the API group: it serves those scenarios alone
            groups["api"].append(stack.others[0].pid)
        if stack.dispatcher is not None:
            groups["dispatcher"] = [stack.dispatcher.pid]
        runner = Runner(stack, CpuMeter(groups, work / "pg" / "pgdata"), args)
        runner.headers = await setup_tenant(stack.api_urls[0])
        results = await scenarios(runner, set(args.scenarios))
    finally:
        stack.stop()
    results["ratios"] = ratios(results, args.apis, args.seconds)
    results["goals"] = goals(results, results["ratios"])
    return results


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16, help="connections per API")
    parser.add_argument("--apis", type=int, default=2, help="API processes for `scale`")
    # `off`: nothing drains the outbox, to measure intake alone.
    parser.add_argument("--dispatcher", choices=("process", "inline", "off"), default="process")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--profile", type=Path, help="cProfile the first API into this file")
    return parser.parse_args()


def main() -> None:
    """Start the servers, measure, print JSON."""
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="awfdrs-bench-"))
    work.chmod(0o755)
    pg = EmbeddedPostgres(work / "pg", durable=True)
    valkey = EmbeddedValkey(work / "valkey", durable=False)
    temporal = EmbeddedTemporal(work / "temporal", headless=True)
    for server in (pg, valkey, temporal):
        server.start()
    try:
        upgrade_database(pg.url.replace("postgresql://", "postgresql+asyncpg://"))
        urls = {"database": pg.url, "redis": valkey.url, "temporal": temporal.address}
        results = asyncio.run(measure(args, urls, work))
    finally:
        for server in (temporal, valkey, pg):
            server.stop()
    report = {
        "benchmark": "ingest",
        "seconds_per_scenario": args.seconds,
        "concurrency_per_api": args.concurrency,
        "apis_for_scale": args.apis,
        "dispatcher": args.dispatcher,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **results,
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
