"""Vendor incidents on the real dev server: twelve incidents failing on one vendor whose breaker
opens become one vendor incident that pages once, holds them (only its probes call), and
releases them staggered once the vendor recovers."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, keep_history
from tests.workflows.observe import transitions
from worker import activity_set, build_worker
from workflows.incident_state import IncidentResult, IncidentView
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import KillRequest
from workflows.vendor_incident_workflow import VendorIncidentWorkflow
from workflows.vendor_payloads import VendorIncidentResult, VendorIncidentState

Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]
VENDOR = "acme-pay"
WORKFLOWS = ("billing-sync", "invoice-sync", "refund-sync")
RETRY_EVERY_S = {
    "max_attempts": 50,
    "initial_interval_s": 1,
    "multiplier": 1,
    "max_interval_s": 1,
    "jitter": 0,
}
# Five failures open the breaker for four seconds; one good probe closes it. The breaker alone
# opens vendor incidents here (by count: tests/workflows/test_vendor_count_live.py).
BREAKER = """
  {vendor}:
    circuit_breaker:
      window_size: 20
      minimum_calls: 5
      failure_rate_threshold: 0.5
      open_duration_s: 4
      half_open_probes: 1
    rate_limit_per_s: 1000
    call_timeout_s: 5
    degraded_after: off
"""


@pytest.fixture
async def vendor_starter(
    tmp_path: Path, settings: Settings, temporal_client: Client, tenant: TenantCredentials
) -> AsyncIterator[IncidentStarter]:
    """A worker whose policies give the test vendor a breaker that opens for four seconds."""
    policy_dir = tmp_path / "rules"
    shutil.copytree(Path(__file__).resolve().parents[2] / "rules", policy_dir)
    vendors = policy_dir / "vendors.yaml"
    vendors.write_text(vendors.read_text() + BREAKER.format(vendor=VENDOR))
    own = settings.model_copy(update={"policy_dir": policy_dir})
    queue = f"test-{uuid.uuid4().hex}"
    async with activity_set(own) as activities, build_worker(temporal_client, activities, queue):
        yield IncidentStarter(temporal_client, tenant, queue, settings.plain_database_url)


async def _children(database_url: str, parent_id: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id FROM incidents WHERE parent_incident_id = $1::uuid", parent_id
        )
    finally:
        await conn.close()
    return {str(row["id"]) for row in rows}


async def _vendor_rows(database_url: str, workflow_id: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM incidents WHERE workflow_id = $1", workflow_id
        )
    finally:
        await conn.close()
    return int(count)


async def _resolved_at(database_url: str, incident_id: str) -> float:
    """When the vendor incident's resolution was stored (Unix seconds)."""
    conn = await asyncpg.connect(database_url)
    try:
        at = await conn.fetchval(
            "SELECT extract(epoch FROM at) FROM incident_transitions"
            " WHERE incident_id = $1::uuid AND status = 'resolved'",
            incident_id,
        )
    finally:
        await conn.close()
    return float(at)


async def test_twelve_incidents_one_vendor_incident_one_page_staggered_release(
    vendor_starter: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    temporal_client: Client,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(503)]) as vendor, CallbackServer([Reply(200)]) as pager:
        await _page_to(http, tenant, pager)
        children = await start_at_vendor(vendor_starter, http, tenant, vendor.url, WORKFLOWS, 12)
        parent = temporal_client.get_workflow_handle_for(
            VendorIncidentWorkflow.run, f"vendor:{tenant.id}:{VENDOR}"
        )

        state = await _linked(parent, 12)
        all_linked_at = time.time()
        # Hold through at least one failed probe, then the vendor recovers.
        first_probe = await _probe_seen(parent, vendor, all_linked_at)
        vendor.script = [Reply(200)]
        result: VendorIncidentResult = await asyncio.wait_for(parent.result(), 60)
        resolved_at = await _resolved_at(settings.plain_database_url, state.incident_id)
        results: list[IncidentResult] = await asyncio.gather(
            *(asyncio.wait_for(c.result(), 60) for c in children)
        )
        recorded = await transitions(settings.plain_database_url, state.incident_id)
        await keep_history(parent, "vendor_parent_resolved")
        held = await _held_not_probed(children, recorded)
        await keep_history(held, "vendor_child_held_released")
        held_id = (await held.query(IncidentWorkflow.status)).incident_id

    assert result.status == "resolved" and result.children == 12, result
    assert [r.status for r in results] == ["resolved"] * 12
    assert await _vendor_rows(settings.plain_database_url, parent.id) == 1
    assert await _children(settings.plain_database_url, state.incident_id) == {
        c.incident_id for c in state.children
    }
    linked = await temporal_client.count_workflows(
        f'ParentIncident = "vendor:{tenant.id}:{VENDOR}" AND TenantId = "{tenant.id}"'
    )
    assert linked.count == 12
    # Held: from the moment all twelve were linked until the vendor incident resolved, only
    # its probes called (each asked child calls once).
    held_calls = [c for c in vendor.calls if all_linked_at <= c.received_at < resolved_at]
    final: VendorIncidentState = await parent.query(VendorIncidentWorkflow.status)
    assert first_probe and 1 <= len(held_calls) <= final.probes, (held_calls, final.probes)
    # One page, with every held incident counted; nothing else reached the pager.
    assert len(pager.calls) == 1
    assert "12 incident(s) held across 3 workflow(s)" in json.dumps(pager.calls[0].body)
    # Released staggered: the first calls after the release are spread over more than a second.
    firsts: dict[str, float] = {}
    for call in vendor.calls:
        key = call.headers.get("idempotency-key", "")
        if call.received_at >= resolved_at and key:
            firsts.setdefault(key.split(":")[0], call.received_at)
    # Every child but the one whose probe succeeded (it resolved before the release).
    assert len(firsts) == 11, firsts
    assert max(firsts.values()) - min(firsts.values()) > 1.0
    probes = [reason for _, reason in recorded if reason.startswith("probe #")]
    assert probes and probes[0].startswith("probe #1 through incident "), recorded
    assert recorded[-1][0] == "resolved"
    # Both timelines say what happened: the prober's, and a held child's.
    prober = probes[0].split()[4]
    parent_ref = f"vendor incident {state.incident_id}"
    prober_reasons = [r for _, r in await transitions(settings.plain_database_url, prober)]
    assert f"probe for {parent_ref}" in prober_reasons, prober_reasons
    held_reasons = [r for _, r in await transitions(settings.plain_database_url, held_id)]
    assert any(r.startswith(f"held by {parent_ref}") for r in held_reasons), held_reasons
    assert any(r.startswith(f"released by {parent_ref}") for r in held_reasons), held_reasons


async def _held_not_probed(children: list[Handle], recorded: list[tuple[str, str]]) -> Handle:
    """A child the vendor incident held and released without asking it to probe."""
    probed = " ".join(reason for _, reason in recorded if "probe #" in reason)
    for child in children:
        view = await child.query(IncidentWorkflow.status)
        if view.incident_id not in probed:
            return child
    raise AssertionError("every child probed")


async def _probe_seen(
    parent: WorkflowHandle[Any, Any], vendor: CallbackServer, since: float
) -> bool:
    """Wait until the vendor incident made a probe that reached the (failing) vendor."""
    for _ in range(300):
        state = await parent.query(VendorIncidentWorkflow.status)
        if state.probes >= 1 and any(c.received_at >= since for c in vendor.calls):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_an_operator_reads_and_kills_a_vendor_incident_through_the_api(
    vendor_starter: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    temporal_client: Client,
) -> None:
    async with CallbackServer([Reply(503)]) as vendor:
        await register_workflow(http, tenant, callback_url=vendor.url, retry_policy=RETRY_EVERY_S)
        children = [await vendor_starter.start(vendor=VENDOR) for _ in range(6)]
        parent = temporal_client.get_workflow_handle_for(
            VendorIncidentWorkflow.run, f"vendor:{tenant.id}:{VENDOR}"
        )
        state = await _linked(parent, 6)
        path = f"/api/v1/incidents/{state.incident_id}"
        shown = (await http.get(path, headers=tenant.headers)).json()
        assert shown["workflow_id"] == parent.id and shown["vendor"] == VENDOR
        assert shown["live"]["event_count"] == 6, shown
        listed = await http.get(
            "/api/v1/incidents", headers=tenant.headers, params={"workflow": f"vendor:{VENDOR}"}
        )
        assert [i["id"] for i in listed.json()["items"]] == [state.incident_id]
        child = await children[0].query(IncidentWorkflow.status)
        child_shown = (
            await http.get(f"/api/v1/incidents/{child.incident_id}", headers=tenant.headers)
        ).json()
        assert child_shown["parent_incident_id"] == state.incident_id
        paused = await http.post(f"{path}/pause", headers=tenant.headers)
        assert paused.status_code == 409, paused.text
        killed = await http.post(
            f"{path}/kill", headers=tenant.headers, json={"reason": "vendor outage INC-9"}
        )
        assert killed.status_code == 202, killed.text
        result: VendorIncidentResult = await asyncio.wait_for(parent.result(), 30)
        killed_at = time.time()
        results = await asyncio.gather(*(asyncio.wait_for(c.result(), 30) for c in children))
        await asyncio.sleep(2)  # two backoff periods: nothing may call now
    assert (result.status, result.reason) == ("killed", "vendor outage INC-9")
    assert [r.status for r in results] == ["killed"] * 6
    assert all(f"vendor incident {state.incident_id} killed" in (r.reason or "") for r in results)
    assert [c for c in vendor.calls if c.received_at > killed_at] == []


async def _linked(parent: WorkflowHandle[Any, Any], count: int) -> VendorIncidentState:
    """The vendor incident's state once `count` incidents linked to it."""
    for _ in range(600):
        try:
            state: VendorIncidentState = await parent.query(VendorIncidentWorkflow.status)
        except RPCError:  # not started yet
            state = VendorIncidentState()
        if len(state.children) >= count:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} incidents linked")


async def test_a_held_incident_whose_attempts_run_out_pages_through_its_vendor_incident(
    vendor_starter: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    temporal_client: Client,
) -> None:
    two_attempts = RETRY_EVERY_S | {"max_attempts": 2}
    async with CallbackServer([Reply(503)]) as vendor, CallbackServer([Reply(200)]) as pager:
        await register_workflow(http, tenant, callback_url=vendor.url, retry_policy=two_attempts)
        await _page_to(http, tenant, pager)
        children = [await vendor_starter.start(vendor=VENDOR) for _ in range(6)]
        parent = temporal_client.get_workflow_handle_for(
            VendorIncidentWorkflow.run, f"vendor:{tenant.id}:{VENDOR}"
        )
        state = await _linked(parent, 6)
        # The first probe fails: its incident has no attempt left and escalates, silently.
        escalated = await _escalated(children)
        assert escalated.latest_action == f"paged through vendor incident {state.incident_id}"
        await asyncio.sleep(1)  # a page of its own would have left by now
        assert len(pager.calls) == 1, [c.body for c in pager.calls]
        await parent.signal(VendorIncidentWorkflow.kill, KillRequest("test over"))
        await asyncio.wait_for(parent.result(), 30)
        await asyncio.gather(*(asyncio.wait_for(c.result(), 30) for c in children))


async def start_at_vendor(
    starter: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    callback_url: str,
    workflows: tuple[str, ...],
    count: int,
    vendor: str = VENDOR,
) -> list[Handle]:
    """Register `workflows` calling `callback_url`; start `count` incidents at `vendor`, in turn."""
    for name in workflows:
        await register_workflow(
            http, tenant, name, callback_url=callback_url, retry_policy=RETRY_EVERY_S
        )
    return [
        await starter.start(workflow=workflows[i % len(workflows)], vendor=vendor)
        for i in range(count)
    ]


async def _page_to(
    http: httpx.AsyncClient, tenant: TenantCredentials, pager: CallbackServer
) -> None:
    """Make the tenant's policy page `pager` (a signed webhook)."""
    target = {"type": "webhook", "url": pager.url}
    policy = {"levels": [{"name": "on-call", "ack_timeout_s": 900, "targets": [target]}]}
    put = await http.put("/api/v1/escalation-policies/tenant", headers=tenant.headers, json=policy)
    assert put.status_code == 200, put.text


async def _escalated(children: list[Handle]) -> IncidentView:
    """The first child seen escalated."""
    for _ in range(600):
        for child in children:
            view = await child.query(IncidentWorkflow.status)
            if view.status == "escalated":
                return view
        await asyncio.sleep(0.1)
    raise AssertionError("no held incident escalated")


async def test_without_a_tenant_policy_the_held_workflows_webhook_is_paged_once(
    vendor_starter: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    temporal_client: Client,
) -> None:
    async with CallbackServer([Reply(503)]) as vendor, CallbackServer([Reply(200)]) as pager:
        await register_workflow(
            http,
            tenant,
            callback_url=vendor.url,
            retry_policy=RETRY_EVERY_S,
            escalation_webhook_url=pager.url,
        )
        children = [await vendor_starter.start(vendor=VENDOR) for _ in range(6)]
        parent = temporal_client.get_workflow_handle_for(
            VendorIncidentWorkflow.run, f"vendor:{tenant.id}:{VENDOR}"
        )
        await _linked(parent, 6)
        for _ in range(300):
            if (await parent.query(VendorIncidentWorkflow.status)).paged:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # a second page would have left by now
        await parent.signal(VendorIncidentWorkflow.kill, KillRequest("test over"))
        await asyncio.wait_for(parent.result(), 30)
        await asyncio.gather(*(asyncio.wait_for(c.result(), 30) for c in children))
    assert len(pager.calls) == 1, [c.body for c in pager.calls]
    assert VENDOR in json.dumps(pager.calls[0].body)
