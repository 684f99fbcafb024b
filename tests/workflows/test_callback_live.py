"""The callback on the real dev server: a changed `callback_url` is used from the next attempt."""

from __future__ import annotations

import asyncio

import httpx

from devstack.http_target import CallbackServer, Reply
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter
from workflows.incident_workflow import IncidentWorkflow

# The backoff outlasts the worker's callback URL cache, so the second attempt sees the change.
BACKOFF_S = 2
POLICY = {
    "max_attempts": 3,
    "initial_interval_s": BACKOFF_S,
    "multiplier": 1,
    "max_interval_s": BACKOFF_S,
    "jitter": 0.0,
}


async def test_a_changed_callback_url_is_used_from_the_next_attempt(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    async with CallbackServer([Reply(503)]) as old, CallbackServer([Reply(200)]) as new:
        await register_workflow(http, tenant, callback_url=old.url, retry_policy=POLICY)
        handle = await live.start()
        for _ in range(300):
            if old.calls:
                break
            await asyncio.sleep(0.05)
        changed = await http.patch(
            "/api/v1/workflows/billing-sync", headers=tenant.headers, json={"callback_url": new.url}
        )
        assert changed.status_code == 200, changed.text
        result = await asyncio.wait_for(handle.result(), 30)
        view = await handle.query(IncidentWorkflow.status)
        listed = await http.get(
            "/api/v1/actions", headers=tenant.headers, params={"incident_id": view.incident_id}
        )
    assert (result.status, result.attempts) == ("resolved", 2)
    assert old.keys() == [f"{view.incident_id}:1"]
    assert new.keys() == [f"{view.incident_id}:2"]
    called = {a["attempt"]: a["result"]["callback_url"] for a in listed.json()["items"]}
    assert called == {1: old.url, 2: new.url}
