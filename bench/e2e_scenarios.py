"""The end-to-end scenarios: first-callback latency, an event storm, many open incidents.

Each runs against a `Stack` (the API and worker processes `bench/e2e.py` started) and returns
its figures as a JSON-ready dict.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import open_loop
from bench.ingest import encode_singles, event
from bench.load import drive, percentile
from devstack.http_target import CallbackServer, Reply
from devstack.progress import Bar, progress_board
from vocabulary import IncidentStatus, Remediation

SLOW = {
    "max_attempts": 3,
    "initial_interval_s": 3600,
    "multiplier": 1,
    "max_interval_s": 3600,
    "jitter": 0,
}
# Longer than opening 100,000 incidents takes on a small box: an incident whose hour was up
# would retry while the rest still open, and the run would measure both.
PARKED = SLOW | {"initial_interval_s": 86_400, "max_interval_s": 86_400}
QUICK = {
    "max_attempts": 3,
    "initial_interval_s": 1,
    "multiplier": 1,
    "max_interval_s": 1,
    "jitter": 0,
}


def rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class Stack:
    """The API and worker processes, their tenant, and a callback server."""

    def __init__(self, api: str, headers: dict[str, str], worker_pid: int, database: str) -> None:
        self.api, self.headers, self.worker_pid, self.database = api, headers, worker_pid, database
        # Filled in by bench/e2e.py: every worker process, the servers, the run's directory.
        self.worker_pids = [worker_pid]
        self.temporal, self.env, self.work = "", dict[str, str](), Path()
        self.servers: dict[str, list[int]] = {}  # what each server is → its processes' pids

    def server_processes(self) -> dict[str, list[int]]:
        """The stack's processes by what they are, the workers' included."""
        return {**self.servers, "worker": self.worker_pids}

    async def register(
        self, http: httpx.AsyncClient, name: str, url: str, policy: dict[str, Any]
    ) -> None:
        """Register a workflow for one scenario."""
        response = await http.post(
            f"{self.api}/api/v1/workflows",
            headers=self.headers,
            json={"name": name, "callback_url": url, "retry_policy": policy},
        )
        response.raise_for_status()

    async def signals(self, http: httpx.AsyncClient) -> float:
        """Signals the dispatcher has sent so far (from /metrics)."""
        text = (await http.get(f"{self.api}/metrics")).text
        return sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("awfdrs_dispatcher_signals_total")
        )


async def first_callback_latency(
    stack: Stack, rate: float, seconds: float, samples: list[float] | None = None
) -> dict[str, Any]:
    """Open loop: `rate` new incidents per second; POST → first callback, from intended time.

    Each latency, in seconds, is also appended to `samples` if given (for `--plot`).
    """
    name = f"latency-{rate:g}-{uuid.uuid4().hex[:6]}"
    deferred = 0
    async with CallbackServer([Reply(200)]) as server, httpx.AsyncClient(timeout=30) as http:
        await stack.register(http, name, server.url, QUICK)

        async def send(_n: int) -> str:
            nonlocal deferred
            body = event(name) | {"step": f"step-{uuid.uuid4().hex[:8]}"}
            url = f"{stack.api}/api/v1/events"
            answer = (await http.post(url, json=body, headers=stack.headers)).json()
            deferred += answer["remediation"] == Remediation.DEFERRED
            return str(answer["incident_key"])

        figures = await open_loop.drive(server, "first callback", rate, seconds, send)
    # Held back by the tenant's fairness caps: such a run measures the cap, not the worker.
    figures["deferred"] = deferred
    if samples is not None:
        samples.extend(figures["latencies_s"])
    return figures


def storm_bodies(events: int) -> list[bytes]:
    """Pre-encoded batches of 1,000 failures spread over 10 steps (10 signatures)."""
    return [
        json.dumps(
            {"events": [event("storm") | {"step": f"s{(b * 1000 + i) % 10}"} for i in range(1000)]}
        ).encode()
        for b in range(events // 1000)
    ]


async def storm(stack: Stack, events: int) -> dict[str, Any]:
    """`events` failures over 10 signatures through the batch endpoint."""
    async with CallbackServer([Reply(503)]) as server, httpx.AsyncClient(timeout=60) as http:
        await stack.register(http, "storm", server.url, SLOW)
        before = await stack.signals(http)
        started = time.perf_counter()
        url = f"{stack.api}/api/v1/events/batch"
        bodies = storm_bodies(events)
        ingest = await drive(
            url,
            bodies,
            headers=stack.headers,
            seconds=10_000,
            concurrency=4,
            events_per_request=1000,
        )
        ingest_s = time.perf_counter() - started
        drained = await wait_outbox_empty(stack.database)
        signals = await stack.signals(http) - before
        incidents = await count(
            stack.database,
            "SELECT count(DISTINCT incident_key) FROM events WHERE workflow = 'storm'",
        )
    return {
        "events": events,
        "ingest_events_per_s": ingest["events_per_s"],
        "ingest_seconds": round(ingest_s, 2),
        "drain_seconds_after_ingest": drained,
        "incidents": incidents,
        "signals_sent": int(signals),
        "errors": ingest["errors"],
    }


async def wait_outbox_empty(database: str, timeout: float = 600) -> float:
    """Seconds until the outbox is empty."""
    started = time.perf_counter()
    while await count(database, "SELECT count(*) FROM event_outbox") > 0:
        if time.perf_counter() - started > timeout:
            break
        await asyncio.sleep(0.5)
    return round(time.perf_counter() - started, 2)


async def count(database: str, query: str) -> int:
    """Run a COUNT query."""
    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


def no_vendor(body: dict[str, Any], step: str) -> dict[str, Any]:
    """A vendorless failure: its incident backs off on its own timer, not a shared breaker."""
    return {k: v for k, v in body.items() if k != "vendor"} | {"step": step}


BACKING_OFF = (
    "SELECT count(*) FROM incidents WHERE source_workflow = 'many' "
    f"AND status = '{IncidentStatus.WAITING}' AND attempts >= 1"
)
BY_STATUS = "SELECT status, count(*) AS n FROM incidents WHERE source_workflow = 'many' GROUP BY 1"


@dataclass
class OpenIncidentsProbe:
    """What `open_incidents` watches while the incidents open: API latency, worker memory."""

    latencies: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    backing_off: int = 0


async def send_many(stack: Stack, http: httpx.AsyncClient, total: int) -> None:
    """`total` vendorless failures on distinct steps, 1,000 per batch."""
    for b in range(0, total, 1000):
        batch = [no_vendor(event("many"), f"m{b + i}") for i in range(min(1000, total - b))]
        url = f"{stack.api}/api/v1/events/batch"
        (await http.post(url, json={"events": batch}, headers=stack.headers)).raise_for_status()


async def watch_backing_off(
    stack: Stack, http: httpx.AsyncClient, *, total: int, timeout: float, bar: Bar
) -> OpenIncidentsProbe:
    """GET /incidents at 5 requests/s until all `total` incidents back off (or `timeout`)."""
    probe = OpenIncidentsProbe(peak_rss_mib=rss_mib(stack.worker_pid))
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        tick = time.perf_counter()
        url = f"{stack.api}/api/v1/incidents"
        await http.get(url, params={"limit": 50}, headers=stack.headers)
        probe.latencies.append(time.perf_counter() - tick)
        probe.peak_rss_mib = max(probe.peak_rss_mib, rss_mib(stack.worker_pid))
        if len(probe.latencies) % 10 == 0:
            probe.backing_off = await count(stack.database, BACKING_OFF)
            bar.update(completed=probe.backing_off, note=f"RSS {probe.peak_rss_mib} MiB")
            if probe.backing_off >= total:
                break
        await asyncio.sleep(max(0.0, 0.2 - (time.perf_counter() - tick)))
    return probe


async def open_incidents(stack: Stack, total: int, timeout: float) -> dict[str, Any]:
    """`total` incidents backing off at once; API p99 on GET /incidents meanwhile."""
    async with CallbackServer([Reply(503)]) as server, httpx.AsyncClient(timeout=30) as http:
        await stack.register(http, "many", server.url, PARKED)
        await send_many(stack, http, total)
        started = time.perf_counter()
        with progress_board(sys.stderr) as board:
            bar = board.add("incidents backing off", total=total)
            probe = await watch_backing_off(stack, http, total=total, timeout=timeout, bar=bar)
        elapsed = time.perf_counter() - started
    conn = await asyncpg.connect(stack.database)
    try:
        statuses = {row["status"]: row["n"] for row in await conn.fetch(BY_STATUS)}
    finally:
        await conn.close()
    return {
        "incidents": total,
        "incident_rows_by_status": statuses,
        "backing_off": probe.backing_off,
        "seconds_to_all_backing_off": round(elapsed, 1),
        "worker_rss_mib_peak": probe.peak_rss_mib,
        "get_incidents_p50_ms": percentile(probe.latencies, 0.5),
        "get_incidents_p99_ms": percentile(probe.latencies, 0.99),
        "callback_calls": len(server.calls),
    }


async def naive_storm(base_url: str, events: int) -> dict[str, Any]:
    """The naive design on the same servers: insert + one signal-with-start per event."""
    result = await drive(
        f"{base_url}/naive", encode_singles(events), headers={}, seconds=10_000, concurrency=16
    )
    return {
        "events": events,
        "ingest_events_per_s": result["events_per_s"],
        "signals_sent": result["requests"],
        "errors": result["errors"],
    }
