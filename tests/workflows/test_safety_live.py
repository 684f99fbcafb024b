"""The safety layer end to end: kill switches, a Redis outage, a vendor forced open."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle

from api.app import create_app
from devstack.http_target import CallbackServer, Reply
from devstack.valkey import EmbeddedValkey
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import failure_event, register_workflow
from tests.utils.incidents import IncidentStarter, keep_history
from tests.workflows.observe import current_details, transitions
from worker import activity_set, build_worker
from workflows.incident_state import IncidentResult, IncidentView
from workflows.incident_workflow import IncidentWorkflow

BACKOFF_2S = {
    "max_attempts": 10,
    "initial_interval_s": 2,
    "multiplier": 1,
    "max_interval_s": 2,
    "jitter": 0,
}
Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]
FORCED_OPEN_WAIT = r"waiting: stripe circuit forced open by an operator, [0-9,]+ s"


async def _view_until(handle: Handle, check: object, timeout: float = 30) -> IncidentView:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        view = await handle.query(IncidentWorkflow.status)
        if check(view):  # type: ignore[operator]
            return view
        assert asyncio.get_running_loop().time() < deadline, f"never held; last view {view}"
        await asyncio.sleep(0.1)


async def test_kill_switch_kills_20_backing_off_incidents_and_no_call_follows(
    live: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    temporal_client: Client,
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=BACKOFF_2S)
        # Vendorless, so twenty failing first attempts do not open a shared breaker.
        handles = [await live.start(vendor=None) for _ in range(20)]
        for handle in handles:
            await _view_until(handle, lambda v: v.attempts >= 1 and v.status == "waiting")
        query = f'TenantId = "{tenant.id}" AND ExecutionStatus = "Running"'
        for _ in range(100):
            if (await temporal_client.count_workflows(query)).count == 20:
                break
            await asyncio.sleep(0.1)
        response = await http.post(
            "/api/v1/kill-switches",
            headers=tenant.headers,
            json={"workflow": "billing-sync", "reason": "vendor outage INC-7"},
        )
        activated = time.monotonic()
        assert response.status_code == 201, response.text
        # The stored switch also stops any incident whose backoff ends before its signal
        # lands (the gate reads it): those count as killed, not as signalled.
        assert 0 < response.json()["incidents_signalled"] <= 20
        results = await asyncio.gather(*(asyncio.wait_for(h.result(), 30) for h in handles))
        await asyncio.sleep(3)  # a full backoff period: nothing may call now
    assert [r.status for r in results] == ["killed"] * 20
    assert all(r.reason == "kill switch: vendor outage INC-7" for r in results)
    assert [c for c in server.calls if c.at > activated] == []
    event = await http.post("/api/v1/events", json=failure_event(), headers=tenant.headers)
    assert event.status_code == 202 and event.json()["remediation"] == "suppressed"
    listed = (await http.get("/api/v1/kill-switches", headers=tenant.headers)).json()
    switch_id = listed[0]["id"]
    off = await http.delete(f"/api/v1/kill-switches/{switch_id}", headers=tenant.headers)
    assert off.json()["active"] is False and off.json()["deactivated_by"]
    again = await http.post("/api/v1/events", json=failure_event(), headers=tenant.headers)
    assert again.json()["remediation"] == "normal"


async def test_a_vendor_forced_open_holds_calls_until_closed_and_says_why(
    live: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=BACKOFF_2S)
        forced = await http.post("/api/v1/vendors/stripe/circuit/open", headers=tenant.headers)
        assert forced.json()["circuit_state"] == "forced_open"
        handle = await live.start()
        view = await _view_until(handle, lambda v: v.status == "waiting")
        assert re.fullmatch(FORCED_OPEN_WAIT, view.gate_reason or ""), view.gate_reason
        assert re.search(f"gate: {FORCED_OPEN_WAIT}", await current_details(handle))
        waiting = await _waiting_reason(settings, view.incident_id)
        assert re.fullmatch(FORCED_OPEN_WAIT, waiting), waiting
        await asyncio.sleep(3)
        assert server.calls == []
        vendors = (await http.get("/api/v1/vendors", headers=tenant.headers)).json()
        assert {"name": "stripe", "circuit_state": "forced_open"}.items() <= next(
            v for v in vendors if v["name"] == "stripe"
        ).items()
        closed = await http.post("/api/v1/vendors/stripe/circuit/reset", headers=tenant.headers)
        assert closed.json()["circuit_state"] == "closed"
        result = await asyncio.wait_for(handle.result(), 15)
        await keep_history(handle, "gate_wait_forced_open")
    assert result.status == "resolved"
    assert len(server.calls) == 1


async def _waiting_reason(settings: Settings, incident_id: str) -> str:
    """The reason recorded with the incident's transition to waiting, once it is stored."""
    for _ in range(100):
        recorded = dict(await transitions(settings.plain_database_url, incident_id))
        if "waiting" in recorded:
            return recorded["waiting"]
        await asyncio.sleep(0.1)
    raise AssertionError("no transition to waiting was recorded")


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedValkey]:
    """A Valkey this test stops and starts."""
    server = EmbeddedValkey(tmp_path / "valkey", durable=False)
    server.start()
    yield server
    server.stop()


async def test_redis_down_holds_remediation_and_never_fails_ingestion(
    settings: Settings,
    temporal_client: Client,
    tenant: TenantCredentials,
    own_redis: EmbeddedValkey,
) -> None:
    own = settings.model_copy(update={"redis_url": own_redis.url})
    app = create_app(own, temporal=temporal_client)
    policy = {**BACKOFF_2S, "initial_interval_s": 1, "max_interval_s": 1}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        activity_set(own) as activities,
        CallbackServer([Reply(503), Reply(200)]) as server,
    ):
        queue = f"redis-down-{tenant.id}"
        async with build_worker(temporal_client, activities, queue):
            await register_workflow(http, tenant, callback_url=server.url, retry_policy=policy)
            handle = await IncidentStarter(
                temporal_client, tenant, queue, own.plain_database_url
            ).start()
            await _view_until(handle, lambda v: v.attempts == 1 and v.status == "waiting")
            own_redis.stop()
            view = await _view_until(handle, lambda v: "redis" in (v.gate_reason or ""))
            assert view.status == "waiting"
            for _ in range(5):
                posted = await http.post(
                    "/api/v1/events", json=failure_event(), headers=tenant.headers
                )
                assert posted.status_code == 202, posted.text
            await asyncio.sleep(3)
            assert len(server.calls) == 1
            own_redis.start()
            result = await asyncio.wait_for(handle.result(), 30)
    assert result.status == "resolved"
    assert len(server.calls) == 2
