"""Temporal carries references, not authority or data: forged starts call nobody, histories
hold no client payload."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client, WorkflowHandle

from devstack.http_target import CallbackServer, Reply
from tests.faults.conftest import Pipeline, PipelineFactory
from tests.faults.support import QUICK, first_call, incident_result
from tests.utils.builders import failure_event, register_workflow
from tests.utils.incidents import digest, failure
from vocabulary import IncidentStatus, PageSeverity, SignalName
from worker import activity_set, build_worker
from workflows.incident_state import (
    EscalationStep,
    IncidentInput,
    IncidentResult,
    IncidentState,
    RetryPlan,
)
from workflows.incident_workflow import IncidentWorkflow

MARKER = "PAYLOAD-MARKER-7f3c"


async def _forge(
    client: Client, queue: str, victim: uuid.UUID, state: IncidentState | None = None
) -> WorkflowHandle[IncidentWorkflow, IncidentResult]:
    """Start an incident by hand, as anyone who can reach Temporal could."""
    signature = uuid.uuid4().hex
    key = f"incident:{victim}:{signature}"
    return await client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(
            tenant_id=str(victim),
            source_workflow="billing-sync",
            signature=signature,
            step="charge-card",
            error_code="VENDOR_TIMEOUT",
            state=state,
        ),
        id=key,
        task_queue=queue,
        start_signal=SignalName.EVENT_DIGEST,
        start_signal_args=[digest([failure()], key)],
    )


async def test_a_forged_start_for_another_tenant_calls_nobody(pipeline: PipelineFactory) -> None:
    p: Pipeline = await pipeline()
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer([Reply(200)]) as victims_callback,
        CallbackServer([Reply(200)]) as attackers,
    ):
        await register_workflow(
            p.http,
            p.tenant,
            callback_url=victims_callback.url,
            escalation_webhook_url=victims_callback.url,
            retry_policy=QUICK,
        )
        opened = await _forge(p.temporal, p.settings.task_queue, p.tenant.id)
        # A forged continued run skips opening: it claims an incident and names its own URLs.
        plan = RetryPlan("forged", 3, 0.1, 1, 0.1, 0)
        state = IncidentState(
            incident_id=str(uuid.uuid4()),
            status=IncidentStatus.REMEDIATING,
            analysed=True,
            plan=plan,
            callback_url=attackers.url,
            escalation=[EscalationStep("forged", attackers.url, 1, PageSeverity.CRITICAL)],
            watermarks_loaded=True,
        )
        continued = await _forge(p.temporal, p.settings.task_queue, p.tenant.id, state)
        refused = await asyncio.wait_for(opened.result(), 30)
        for _ in range(50):  # let the forged continued run try everything it can
            view = await continued.query(IncidentWorkflow.status)
            if view.status in ("escalated", "killed", "resolved"):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)
        await continued.signal(IncidentWorkflow.kill)
    assert (refused.status, refused.reason) == (
        "suppressed",
        "refused: no stored event of this tenant names this incident",
    )
    assert victims_callback.calls == [] and attackers.calls == []


async def test_no_history_holds_a_client_payload(pipeline: PipelineFactory) -> None:
    p: Pipeline = await pipeline()
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer([Reply(503), Reply(200)]) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=QUICK)
        event = failure_event(
            payload={"card": MARKER, "nested": [{"note": MARKER}]},
            error={"code": "NO_SUCH_CODE", "message": f"upstream said {MARKER}"},
        )
        accepted = await p.http.post("/api/v1/events", json=event, headers=p.tenant.headers)
        key = accepted.json()["incident_key"]
        await first_call(server)
        result = await incident_result(p, key)
        histories = [
            await p.temporal.get_workflow_handle(key, run_id=w.run_id).fetch_history()
            async for w in p.temporal.list_workflows(f'WorkflowId = "{key}"')
        ]
    assert result.status == "resolved"
    assert server.calls[0].body["payload"] == event["payload"]  # the callback has it all
    assert MARKER in server.calls[0].body["error"]["message"]
    assert histories and all(MARKER not in h.to_json() for h in histories)
