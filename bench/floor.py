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
import uuid
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench import open_loop
from bench.floor_workflow import FLOOR_TYPE, FloorWorkflow, floor_step
from devstack.http_target import CallbackServer, Reply


class FloorCallback:
    """The one ordinary activity: POST the incident key to the callback server."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @activity.defn(name="floor_callback")
    async def call(self, target: list[str]) -> int:
        """POST `{"incident_key": key}` to `url`; return the status."""
        url, key = target
        return (await self._http.post(url, json={"incident_key": key})).status_code


async def serve(address: str, task_queue: str, *, sandboxed: bool = True) -> None:
    """Run the floor worker until SIGTERM (its workflows sandboxed as AWFDRS's are, or not)."""
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
            workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
        ):
            await stopping.wait()


async def floor_latency(
    address: str, task_queue: str, rate: float, seconds: float, locals_: int
) -> dict[str, Any]:
    """Open loop on the floor workflow: signal-with-start → first callback, from intended time."""
    client = await Client.connect(address)
    async with CallbackServer([Reply(200)]) as server:

        async def send(n: int) -> str:
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
            return key

        return await open_loop.drive(server, f"floor ({locals_} locals)", rate, seconds, send)


def main() -> None:
    """Run the floor worker (`python -m bench.floor --address … --task-queue …`)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument(
        "--sandbox",
        choices=["true", "false"],
        default="true",
        help="as AWFDRS_WORKER_WORKFLOW_SANDBOX",
    )
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.task_queue, sandboxed=args.sandbox == "true"))


if __name__ == "__main__":
    main()
