"""Vendor incidents opened by count on the real dev server: incidents of two workflows naming a
vendor whose breaker never opens become one vendor incident once five are open within a
minute; it pages once, holds them (only its probes call), resolves on a successful probe and
releases them staggered, and the released incidents, failing again, open no new one."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.incidents import IncidentStarter, keep_history
from tests.workflows.observe import transitions
from tests.workflows.test_vendor_incident_live import (
    _children,
    _held_not_probed,
    _linked,
    _page_to,
    _probe_seen,
    _resolved_at,
    _vendor_rows,
    start_at_vendor,
)
from worker import activity_set, build_worker
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import KillRequest
from workflows.vendor_incident_workflow import VendorIncidentWorkflow
from workflows.vendor_payloads import VendorIncidentResult, VendorIncidentState

VENDOR = "count-pay"
WORKFLOWS = ("billing-sync", "invoice-sync")
# The breaker needs a thousand calls: it never opens here. Five open incidents of two
# workflows within a minute make the vendor degraded; a failed probe waits two seconds.
NEVER_OPENS = """
  {vendor}:
    circuit_breaker:
      window_size: 1000
      minimum_calls: 1000
      failure_rate_threshold: 1.0
      open_duration_s: 2
      half_open_probes: 1
    rate_limit_per_s: 1000
    call_timeout_s: 5
    degraded_after:
      incidents: 5
      workflows: 2
      within_s: 60
"""


@pytest.fixture
async def count_starter(
    tmp_path: Path, settings: Settings, temporal_client: Client, tenant: TenantCredentials
) -> AsyncIterator[IncidentStarter]:
    """A worker whose policies give the test vendor a breaker that never opens."""
    policy_dir = tmp_path / "rules"
    shutil.copytree(Path(__file__).resolve().parents[2] / "rules", policy_dir)
    vendors = policy_dir / "vendors.yaml"
    vendors.write_text(vendors.read_text() + NEVER_OPENS.format(vendor=VENDOR))
    own = settings.model_copy(update={"policy_dir": policy_dir})
    queue = f"test-{uuid.uuid4().hex}"
    async with activity_set(own) as activities, build_worker(temporal_client, activities, queue):
        yield IncidentStarter(temporal_client, tenant, queue, settings.plain_database_url)


async def test_five_incidents_of_two_workflows_open_one_vendor_incident_by_count(
    count_starter: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    temporal_client: Client,
    settings: Settings,
) -> None:
    db = settings.plain_database_url
    async with CallbackServer([Reply(503)]) as vendor, CallbackServer([Reply(200)]) as pager:
        await _page_to(http, tenant, pager)
        children = await start_at_vendor(
            count_starter, http, tenant, vendor.url, WORKFLOWS, 6, VENDOR
        )
        parent = temporal_client.get_workflow_handle_for(
            VendorIncidentWorkflow.run, f"vendor:{tenant.id}:{VENDOR}"
        )
        state = await _linked(parent, 6)
        all_linked_at = time.time()
        first_probe = await _probe_seen(parent, vendor, all_linked_at)
        # The vendor recovers for the next probe, then fails once more for each released
        # incident: failing again, incidents opened before the release must not re-open one.
        done = len(vendor.calls)
        vendor.script = [Reply(503)] * done + [Reply(200)] + [Reply(503)] * 5 + [Reply(200)]
        result: VendorIncidentResult = await asyncio.wait_for(parent.result(), 60)
        resolved_at = await _resolved_at(db, state.incident_id)
        results: list[IncidentResult] = await asyncio.gather(
            *(asyncio.wait_for(c.result(), 60) for c in children)
        )
        recorded = await transitions(db, state.incident_id)
        final: VendorIncidentState = await parent.query(VendorIncidentWorkflow.status)
        await keep_history(parent, "vendor_parent_by_count")
        held = await _held_not_probed(children, recorded)
        await keep_history(held, "vendor_child_by_count")  # recorded before lean-attempt, current
        await keep_history(held, "current_child_by_count")
        held_id = (await held.query(IncidentWorkflow.status)).incident_id

    assert result.status == "resolved" and result.children == 6, result
    assert [r.status for r in results] == ["resolved"] * 6
    assert final.by_count and not final.breaker_opened, final
    assert recorded[0][1].startswith(f"{VENDOR} degraded: "), recorded
    assert "incidents within 60 s" in recorded[0][1], recorded
    assert recorded[-1] == ("resolved", f"{VENDOR} recovered: probe ok"), recorded
    # One vendor incident: the released incidents failed again without opening another.
    assert await _vendor_rows(db, parent.id) == 1
    assert await _children(db, state.incident_id) == {c.incident_id for c in state.children}
    # Held: only its probes called (a failed one, then the good one).
    held_calls = [c for c in vendor.calls if all_linked_at <= c.received_at < resolved_at]
    assert first_probe and 2 <= len(held_calls) <= final.probes, (held_calls, final.probes)
    assert len(pager.calls) == 1
    assert "6 incident(s) held across 2 workflow(s)" in json.dumps(pager.calls[0].body)
    firsts: dict[str, float] = {}
    for call in vendor.calls:
        key = call.headers.get("idempotency-key", "")
        if call.received_at >= resolved_at and key:
            firsts.setdefault(key.split(":")[0], call.received_at)
    assert len(firsts) == 5, firsts  # all but the prober that succeeded
    assert max(firsts.values()) - min(firsts.values()) > 1.0
    probes = [reason for _, reason in recorded if reason.startswith("probe #")]
    assert len(probes) >= 2, recorded
    parent_ref = f"vendor incident {state.incident_id}"
    prober = probes[-1].split()[4]
    prober_reasons = [r for _, r in await transitions(db, prober)]
    assert f"probe for {parent_ref}" in prober_reasons, prober_reasons
    held_reasons = [r for _, r in await transitions(db, held_id)]
    assert any(r.startswith(f"held by {parent_ref} ({VENDOR}: ") for r in held_reasons), (
        held_reasons
    )
    assert any(r.startswith(f"released by {parent_ref}") for r in held_reasons), held_reasons


async def test_fewer_incidents_than_the_count_open_no_vendor_incident(
    count_starter: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    temporal_client: Client,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(503)]) as vendor:
        children = await start_at_vendor(
            count_starter, http, tenant, vendor.url, WORKFLOWS, 4, VENDOR
        )
        # Each of the four fails three times: every gate check counted four, below five.
        for _ in range(300):
            views = [await c.query(IncidentWorkflow.status) for c in children]
            if all(v.attempts >= 3 for v in views):
                break
            await asyncio.sleep(0.1)
        for child in children:
            await child.signal(IncidentWorkflow.kill, KillRequest("test over"))
        await asyncio.gather(*(asyncio.wait_for(c.result(), 30) for c in children))
    assert all(v.attempts >= 3 for v in views), views
    assert all(v.next_action is None or "held" not in v.next_action for v in views), views
    parent = temporal_client.get_workflow_handle(f"vendor:{tenant.id}:{VENDOR}")
    with pytest.raises(RPCError):
        await parent.describe()
    assert await _vendor_rows(settings.plain_database_url, parent.id) == 0
