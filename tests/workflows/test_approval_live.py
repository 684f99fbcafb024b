"""Approval gates on the real dev server: approve and reject through REST and the temporal CLI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from temporalio.client import WorkflowHandle

from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter
from tests.workflows.test_incident_live import _cli
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow

FIRST = {
    "max_attempts": 3,
    "initial_interval_s": 0.2,
    "multiplier": 1,
    "max_interval_s": 0.2,
    "jitter": 0.0,
    "approval": "first",
}
Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]


async def _awaiting(handle: Handle) -> str:
    """Wait until the incident awaits approval; return its incident id."""
    for _ in range(300):
        view = await handle.query(IncidentWorkflow.status)
        if view.status == "awaiting_approval":
            return view.incident_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"never awaited approval; status {view.status}")


async def _causes(
    http: httpx.AsyncClient, tenant: TenantCredentials, incident: str, prefix: str
) -> list[str]:
    """The timeline's state causes starting with `prefix`, once its projection is stored."""
    for _ in range(50):
        entries = await _timeline(http, tenant, incident)
        causes = [e["cause"] or "" for e in entries if e["kind"] == "state"]
        if found := [c for c in causes if c.startswith(prefix)]:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no cause starting {prefix!r} in {causes}")


async def _timeline(http: httpx.AsyncClient, tenant: TenantCredentials, incident: str) -> Any:
    response = await http.get(f"/api/v1/incidents/{incident}/timeline", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["entries"]


async def test_approve_runs_one_call_later_attempts_go_unasked_and_a_closed_incident_is_409(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    async with CallbackServer([Reply(503), Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=FIRST)
        handle = await live.start()
        incident = await _awaiting(handle)
        await asyncio.sleep(0.5)
        calls_before = len(server.calls)
        row = (await http.get(f"/api/v1/incidents/{incident}", headers=tenant.headers)).json()
        path = f"/api/v1/incidents/{incident}"
        approved = await http.post(
            f"{path}/approve", headers=tenant.headers, json={"reason": "vendor is back"}
        )
        result = await asyncio.wait_for(handle.result(), 30)
        late = await http.post(f"{path}/approve", headers=tenant.headers)
    assert calls_before == 0
    assert row["status"] == "awaiting_approval"
    assert approved.status_code == 202, approved.text
    assert result.status == "resolved" and result.attempts == 2  # retry #2 needed no approval
    assert len(server.calls) == 2
    assert late.status_code == 409
    assert "resolved" in late.json()["detail"]
    causes = [e["cause"] for e in await _timeline(http, tenant, incident) if e["kind"] == "state"]
    assert any(c.startswith("approved by api-key:") and "vendor is back" in c for c in causes)
    audit = await http.get("/api/v1/operator-actions", headers=tenant.headers)
    assert any(
        a["action"] == "approve" and a["target"] == f"incident:{incident}" for a in audit.json()
    ), audit.text


async def test_reject_escalates_with_the_reason_and_a_second_decision_is_refused_409(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    async with CallbackServer([Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=FIRST)
        handle = await live.start()
        incident = await _awaiting(handle)
        path = f"/api/v1/incidents/{incident}"
        rejected = await http.post(
            f"{path}/reject", headers=tenant.headers, json={"reason": "not during the freeze"}
        )
        for _ in range(100):
            view = await handle.query(IncidentWorkflow.status)
            if view.status == "escalated":
                break
            await asyncio.sleep(0.1)
        again = await http.post(f"{path}/approve", headers=tenant.headers)
        await handle.signal(IncidentWorkflow.kill)
    assert rejected.status_code == 202, rejected.text
    assert view.status == "escalated"
    # The rejection is the escalation's cause (the page may already be the latest action).
    causes = await _causes(http, tenant, incident, "rejected by api-key:")
    assert any("not during the freeze" in c for c in causes), causes
    assert not server.calls
    assert again.status_code == 409
    assert "incident is escalated, not awaiting approval" in again.json()["detail"]


async def test_temporal_cli_update_approves_and_is_audited_in_the_transitions(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    async with CallbackServer([Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=FIRST)
        handle = await live.start()
        incident = await _awaiting(handle)
        args = ["workflow", "update", "execute", "--workflow-id", handle.id, "--name", "approve"]
        decision = json.dumps({"by": "alice", "reason": "checked the vendor"})
        approved = await asyncio.to_thread(
            _cli, settings.temporal_address, *args, "--input", decision
        )
        result = await asyncio.wait_for(handle.result(), 30)
        refused = await asyncio.to_thread(_cli, settings.temporal_address, *args)
    assert approved.returncode == 0, approved.stderr
    assert "approved by alice: checked the vendor" in approved.stdout
    assert result.status == "resolved" and len(server.calls) == 1
    assert refused.returncode != 0
    causes = [e["cause"] for e in await _timeline(http, tenant, incident) if e["kind"] == "state"]
    assert "approved by alice: checked the vendor" in causes
