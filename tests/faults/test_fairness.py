"""Fairness: a tenant at its caps defers its own new incidents and slows nobody else."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from devstack.http_target import CallbackServer, Reply
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.faults.conftest import Pipeline, PipelineFactory
from tests.faults.ledger import build_ledger
from tests.faults.support import QUICK
from tests.utils.builders import failure_event, register_workflow
from worker import activity_set, build_worker

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _second_tenant(p: Pipeline) -> TenantCredentials:
    created = (
        await p.http.post("/api/v1/tenants", json={"name": uuid.uuid4().hex[:12]}, headers=ADMIN)
    ).json()
    return TenantCredentials(uuid.UUID(created["id"]), created["name"], created["api_key"])


async def _first_callback_s(
    p: Pipeline, tenant: TenantCredentials, server: CallbackServer
) -> float:
    """Seconds from an accepted new failure of `tenant` to its first callback."""
    seen = len(server.calls)
    sent = time.monotonic()
    body = failure_event(step=f"b-{uuid.uuid4().hex[:8]}")
    response = await p.http.post("/api/v1/events", json=body, headers=tenant.headers)
    assert response.status_code == 202 and response.json()["remediation"] == "normal"
    while len(server.calls) == seen:
        assert time.monotonic() - sent < 30, "no callback"
        await asyncio.sleep(0.01)
    return server.calls[seen].at - sent


async def test_a_tenant_at_its_caps_defers_its_new_incidents_and_slows_nobody(
    pipeline: PipelineFactory,
) -> None:
    p: Pipeline = await pipeline()
    a, b = p.tenant, await _second_tenant(p)
    capped = await p.http.patch(
        f"/api/v1/tenants/{a.id}",
        json={"max_open_incidents": 3, "max_new_incidents_per_minute": 100},
        headers=ADMIN,
    )
    assert capped.status_code == 200 and capped.json()["max_open_incidents"] == 3
    parked = {**QUICK, "initial_interval_s": 5, "max_interval_s": 5}
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer([Reply(503), Reply(503), Reply(503), Reply(200)]) as a_server,
        CallbackServer([Reply(200)]) as b_server,
    ):
        await register_workflow(p.http, a, callback_url=a_server.url, retry_policy=parked)
        await register_workflow(p.http, b, callback_url=b_server.url, retry_policy=QUICK)
        idle = min([await _first_callback_s(p, b, b_server) for _ in range(3)])

        flood = [failure_event(step=f"a-{n}") for n in range(30)]
        answer = await p.http.post(
            "/api/v1/events/batch", json={"events": flood}, headers=a.headers
        )
        remediation = [r["remediation"] for r in answer.json()["results"]]
        await asyncio.sleep(0.5)  # A's three admitted incidents are running their callbacks
        loaded = min([await _first_callback_s(p, b, b_server) for _ in range(3)])
        opened_while_capped = {c.body["incident_key"] for c in a_server.calls}

        keys = {r["incident_key"] for r in answer.json()["results"]}
        reached = await p.reached(keys, 30, timeout=90)  # A's deferred incidents start later
        ledger = await _ledger(p, a, sent=flood, reached=reached, server=a_server)
    assert remediation == ["normal"] * 3 + ["deferred"] * 27
    assert len(opened_while_capped) <= 3
    assert loaded <= 2 * idle + 0.25, (idle, loaded)
    assert reached == 30 and len({c.body["incident_key"] for c in a_server.calls}) == 30
    ledger.assert_clean()


async def _ledger(
    p: Pipeline,
    tenant: TenantCredentials,
    *,
    sent: list[dict[str, Any]],
    reached: int,
    server: CallbackServer,
) -> Any:
    return await build_ledger(
        database_url=p.settings.plain_database_url,
        tenant_id=tenant.id,
        accepted_keys={e["idempotency_key"] for e in sent},
        reached=reached,
        calls=server.calls,
        max_attempts=4,
    )
