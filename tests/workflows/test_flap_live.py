"""Flap damping on the real dev server (wall-clock time): five resolve/re-open cycles, then
the sixth incident is `flapping`, says so once to a signed webhook, and calls back only after
its quiet period."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx

from devstack.http_target import CallbackServer, Reply
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter
from workflows.incident_workflow import IncidentWorkflow

QUIET_S = 3
POLICY = {
    "max_attempts": 3,
    "initial_interval_s": 1,
    "multiplier": 1,
    "max_interval_s": 1,
    "flap": {"reopens": 5, "within_s": 3600, "quiet_s": QUIET_S},
}


async def _eventually(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def test_the_sixth_re_open_flaps_notifies_once_and_calls_back_after_the_quiet_period(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    signature = uuid.uuid4().hex
    callback = CallbackServer([Reply(200)])
    async with callback, CallbackServer([Reply(202)]) as hook:
        target = {"type": "webhook", "url": hook.url}
        policy = {
            "levels": [{"name": "on-call", "ack_timeout_s": 900, "targets": [target]}],
            "notify": [{"on": ["flapping"], "targets": [target]}],
        }
        await register_workflow(
            http, tenant, callback_url=callback.url, retry_policy=POLICY, escalation_policy=policy
        )
        for cycle in range(5):
            result = await (await live.start(signature=signature)).result()
            assert (result.status, len(callback.calls)) == ("resolved", cycle + 1)
        sixth = await live.start(signature=signature)
        await _eventually(lambda: len(hook.calls) == 1)
        view = await sixth.query(IncidentWorkflow.status)
        assert (view.status, view.flap_count, view.attempts) == ("flapping", 5, 0)
        assert len(callback.calls) == 5  # held: no callback while flapping
        detail = await http.get(f"/api/v1/incidents/{view.incident_id}", headers=tenant.headers)
        assert detail.json()["status"] == "flapping"
        assert detail.json()["live"]["flap_count"] == 5
        result = await asyncio.wait_for(sixth.result(), QUIET_S + 30)
        assert (result.status, result.attempts) == ("resolved", 1)
        assert len(callback.calls) == 6
    assert [c.body["event_action"] for c in hook.calls] == ["flapping"]
    assert hook.calls[0].body["dedup_key"] == view.incident_id
