"""Ingest throughput and latency, against the ceiling and the naive design, in one run.

    .venv/bin/python -m bench.ingest [--seconds 10] [--concurrency 16]

Starts embedded PostgreSQL, Valkey and Temporal (or uses AWFDRS_* URLs), runs the AWFDRS API
and the baseline app as real uvicorn processes, drives each with a closed-loop load generator
at fixed concurrency, and prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.load import drive
from devstack.postgres import EmbeddedPostgres
from devstack.process import free_port, spawn, stop
from devstack.temporal import EmbeddedTemporal
from devstack.valkey import EmbeddedValkey
from models.migrate import upgrade_database
from vocabulary import EventType

ADMIN = "bench-admin-token-0123456789abcdef"


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


def serve(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start a uvicorn process and wait until it answers."""
    proc = spawn(argv, log_path=log, env={**os.environ, **env})
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{argv} did not start; see {log}")


async def setup_tenant(api: str) -> dict[str, str]:
    """Create a tenant with an unbounded ingest rate and register the workflow."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=api) as http:
        tenant = (
            await http.post(
                "/api/v1/tenants",
                headers=admin,
                json={"name": f"bench-{uuid.uuid4().hex[:6]}", "ingest_rate_per_s": 1_000_000},
            )
        ).json()
        headers = {"Authorization": f"Bearer {tenant['api_key']}"}
        await http.post(
            "/api/v1/workflows",
            headers=headers,
            json={"name": "billing-sync", "callback_url": "http://127.0.0.1:9/callback"},
        )
    return headers


def stack_env(urls: dict[str, str]) -> dict[str, str]:
    """Environment of the API, worker and baseline processes for the given servers."""
    return {
        "AWFDRS_DATABASE_URL": urls["database"],
        "AWFDRS_REDIS_URL": urls["redis"],
        "AWFDRS_TEMPORAL_ADDRESS": urls["temporal"],
        "AWFDRS_ENV": "development",
        "AWFDRS_ADMIN_TOKEN": ADMIN,
        # A throwaway key: the bench's database lives only as long as the run.
        "AWFDRS_SECRET_KEY": base64.b64encode(os.urandom(32)).decode("ascii"),
        "AWFDRS_LOG_LEVEL": "WARNING",
        "BENCH_DATABASE_URL": urls["database"],
        "BENCH_TEMPORAL_ADDRESS": urls["temporal"],
    }


def start_api_and_baseline(
    env: dict[str, str], work: Path
) -> tuple[subprocess.Popen[bytes], str, subprocess.Popen[bytes], str]:
    """Start the AWFDRS API and the baseline app as uvicorn processes; return them and URLs."""
    api_port, base_port = free_port(), free_port()
    api = serve(
        [sys.executable, "-m", "api"],
        {**env, "AWFDRS_API_PORT": str(api_port)},
        api_port,
        work / "api.log",
    )
    base = serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline_app:app",
            "--port",
            str(base_port),
            "--log-level",
            "warning",
        ],
        env,
        base_port,
        work / "base.log",
    )
    return api, f"http://127.0.0.1:{api_port}", base, f"http://127.0.0.1:{base_port}"


async def scenarios(
    api_url: str, base_url: str, headers: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """The ceiling, AWFDRS single and batched, and the naive design, one after the other."""
    seconds, conc = args.seconds, args.concurrency
    singles = int(seconds * 4000)
    load = {"seconds": seconds, "concurrency": conc}
    return {
        "ceiling_bare_insert": await drive(
            f"{base_url}/ceiling", encode_singles(singles), headers={}, **load
        ),
        "awfdrs_single": await drive(
            f"{api_url}/api/v1/events", encode_singles(singles), headers=headers, **load
        ),
        "awfdrs_batch_1000": await drive(
            f"{api_url}/api/v1/events/batch",
            encode_batches(int(seconds * 40)),
            headers=headers,
            seconds=seconds,
            concurrency=max(2, conc // 4),
            events_per_request=1000,
        ),
        "naive_signal_per_event": await drive(
            f"{base_url}/naive", encode_singles(singles), headers={}, **load
        ),
    }


async def measure(args: argparse.Namespace, urls: dict[str, str], work: Path) -> dict[str, Any]:
    """Run every scenario against the running servers."""
    api, api_url, base, base_url = start_api_and_baseline(stack_env(urls), work)
    try:
        results = await scenarios(api_url, base_url, await setup_tenant(api_url), args)
    finally:
        stop(api)
        stop(base)
    single = results["awfdrs_single"]["events_per_s"]
    results["ratios"] = {
        "single_vs_ceiling": round(single / results["ceiling_bare_insert"]["events_per_s"], 3),
        "single_vs_naive": round(single / results["naive_signal_per_event"]["events_per_s"], 2),
    }
    results["goals"] = {
        "single_vs_ceiling_ge_0.8": results["ratios"]["single_vs_ceiling"] >= 0.8,
        "batch_ge_20000_events_per_s": results["awfdrs_batch_1000"]["events_per_s"] >= 20_000,
        "single_vs_naive_ge_10": results["ratios"]["single_vs_naive"] >= 10,
    }
    return results


def main() -> None:
    """Start the servers, measure, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
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
        "concurrency": args.concurrency,
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
