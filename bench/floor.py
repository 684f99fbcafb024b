"""The bare-Temporal floor of the first callback: what the same servers do with no AWFDRS work.

    .venv/bin/python -m bench.floor --address HOST:PORT --task-queue Q   # its worker

One workflow per incident, started by signal-with-start like the dispatcher's; it runs `locals`
trivial local activities (the number of steps AWFDRS's opening path has) and then one ordinary
activity that POSTs to the local callback server, as the callback attempt does. `bench/e2e.py`
runs this worker as its own process and drives it at fixed rates with `floor_latency`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
import uuid
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from bench.floor_workflow import FLOOR_TYPE, FloorWorkflow, floor_step
from bench.load import percentile
from devstack.http_target import Call, CallbackServer, Reply
from devstack.progress import following, progress_board

# How long a run waits after its last send for every first callback (a saturated rate queues).
DRAIN_TIMEOUT_S = 300


class FloorCallback:
    """The one ordinary activity: POST the incident key to the callback server."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @activity.defn(name="floor_callback")
    async def call(self, target: list[str]) -> int:
        """POST `{"incident_key": key}` to `url`; return the status."""
        url, key = target
        return (await self._http.post(url, json={"incident_key": key})).status_code


async def serve(address: str, task_queue: str) -> None:
    """Run the floor worker until SIGTERM."""
    client = await Client.connect(address)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    async with httpx.AsyncClient() as http:
        callback = FloorCallback(http)
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[FloorWorkflow],
            activities=[floor_step, callback.call],
        ):
            await stopping.wait()


async def floor_latency(
    address: str, task_queue: str, rate: float, seconds: float, locals_: int
) -> dict[str, Any]:
    """Open loop on the floor workflow: signal-with-start → first callback, from intended time."""
    client = await Client.connect(address)
    first_call: dict[str, float] = {}

    async def on_call(call: Call) -> None:
        first_call.setdefault(str(call.body.get("incident_key")), time.perf_counter())

    async with CallbackServer([Reply(200)]) as server:
        server.on_call = on_call
        intended: dict[str, float] = {}
        start = time.perf_counter() + 0.5

        async def fire(n: int) -> None:
            at = start + n / rate
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            key = f"floor-{uuid.uuid4().hex[:12]}"
            await client.start_workflow(
                FLOOR_TYPE,
                args=[[server.url, key], locals_],
                id=key,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal="event",
                start_signal_args=[n],
            )
            intended[key] = at

        total = int(rate * seconds)
        with progress_board(sys.stderr) as board:
            bar = board.add(f"floor ({locals_} locals) at {rate:g}/s", total=total)
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


def main() -> None:
    """Run the floor worker (`python -m bench.floor --address … --task-queue …`)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.task_queue))


if __name__ == "__main__":
    main()
