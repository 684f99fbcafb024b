"""What the fault and integrity tests share: a sender with a ledger, and waiting helpers."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.service import RPCError

from devstack.http_target import CallbackServer
from tests.faults.conftest import Pipeline
from tests.faults.ledger import Ledger, build_ledger
from tests.utils.builders import failure_event
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow

QUICK = {
    "max_attempts": 4,
    "initial_interval_s": 0.5,
    "multiplier": 1,
    "max_interval_s": 0.5,
    "jitter": 0,
}


class Sender:
    """Posts events and remembers which idempotency keys the API acknowledged."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.accepted: set[str] = set()
        self.incidents: set[str] = set()
        self.refused = 0

    async def send(self, **overrides: Any) -> bool:
        """POST one event; True when it was acknowledged (2xx)."""
        body = failure_event(**overrides)
        response = await self.p.send(body)
        if response.status_code in (200, 202):
            self.accepted.add(body["idempotency_key"])
            self.incidents.add(response.json()["incident_key"])
            return True
        assert response.status_code == 503, response.text  # never anything but "retry later"
        self.refused += 1
        return False


async def incident_result(p: Pipeline, key: str, timeout: float = 60) -> IncidentResult:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            handle = p.temporal.get_workflow_handle_for(IncidentWorkflow.run, key)
            return await asyncio.wait_for(handle.result(), timeout)
        except RPCError:  # accepted, not yet started by the dispatcher
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)


async def ledger_of(
    p: Pipeline, sender: Sender, server: CallbackServer, max_attempts: int = 4
) -> Ledger:
    reached = await p.reached(sender.incidents, len(sender.accepted))
    return await build_ledger(
        database_url=p.settings.plain_database_url,
        tenant_id=p.tenant.id,
        accepted_keys=sender.accepted,
        reached=reached,
        calls=server.calls,
        max_attempts=int(max_attempts),
    )


async def first_call(server: CallbackServer) -> None:
    for _ in range(300):
        if server.calls:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the callback was never called")
