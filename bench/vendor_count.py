"""What linking by count costs an incident naming a vendor, before each gate check, in one run.

    .venv/bin/python -m bench.vendor_count [--incidents 100000] [--runs 2000]

Starts embedded PostgreSQL, migrates it, stores one tenant's incidents (a tenth of them open,
over 20 vendors and 7 workflows, opened over 30 days), and times the count query of
activities/vendor_count.py against two baselines on the same connection: a `SELECT 1` round
trip (the floor) and the same count without its partial index `ix_incidents_open_by_vendor`
(dropped inside a transaction that is rolled back). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from activities.vendor_count import COUNT_QUERY
from devstack.postgres import EmbeddedPostgres
from models.migrate import upgrade_database

_FILL = """
INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, severity, title,
                       source_workflow, signature, vendor, first_seen_at, last_seen_at,
                       watermarks, created_at, closed_at)
SELECT gen_random_uuid(), $1, 'incident:' || g, 'r', 'waiting', 'high', 't', 'wf-' || (g % 7),
       md5(g::text), 'vendor-' || (g % 20), now(), now(), '{}',
       now() - make_interval(secs => (g % 2592000)),
       CASE WHEN g % 10 = 0 THEN NULL ELSE now() END
FROM generate_series(1, $2) AS g
"""
# The activity's query with asyncpg's numbered parameters.
_SQL = (
    str(COUNT_QUERY)
    .replace(":tenant_id", "$1")
    .replace(":workflow_id", "$2")
    .replace(":vendor", "$3")
    .replace(":within_s", "$4")
)


def parse_args() -> argparse.Namespace:
    """The bench's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2000)
    return parser.parse_args()


async def _timed(runs: int, call: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    """p50/p95 in milliseconds of `runs` calls, after a short warm-up."""
    for _ in range(min(50, runs)):
        await call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(samples, n=20)
    return {"p50_ms": round(statistics.median(samples), 4), "p95_ms": round(cuts[18], 4)}


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Store the incidents, then time the floor, the count, and the count without its index."""
    conn = await asyncpg.connect(url)
    try:
        tenant = uuid.uuid4()
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, 'bench')", tenant)
        await conn.execute(_FILL, tenant, args.incidents)
        await conn.execute("ANALYZE incidents")
        params = (tenant, f"vendor:{tenant}:vendor-3", "vendor-3", 60.0)
        floor = await _timed(args.runs, lambda: conn.fetchval("SELECT 1"))
        count = await _timed(args.runs, lambda: conn.fetchrow(_SQL, *params))
        rolled_back = conn.transaction()
        await rolled_back.start()
        try:
            await conn.execute("DROP INDEX ix_incidents_open_by_vendor")
            unindexed = await _timed(args.runs, lambda: conn.fetchrow(_SQL, *params))
        finally:
            await rolled_back.rollback()  # the index stays
    finally:
        await conn.close()
    return {"floor_select_1": floor, "count": count, "count_without_index": unindexed}


def main() -> None:
    """Start PostgreSQL, measure, print JSON."""
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="awfdrs-vendor-count-"))
    work.chmod(0o755)
    pg = EmbeddedPostgres(work / "pg", durable=False)
    pg.start()
    try:
        upgrade_database(pg.url.replace("postgresql://", "postgresql+asyncpg://"))
        results = asyncio.run(measure(pg.url, args))
    finally:
        pg.stop()
    report = {
        "benchmark": "vendor_count",
        "args": vars(args),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **results,
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
