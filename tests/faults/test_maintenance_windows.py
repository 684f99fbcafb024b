"""Maintenance windows end to end: intake, dispatcher, worker and gate on the real stack."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from devstack.http_target import CallbackServer, Reply
from tests.faults.conftest import Pipeline, PipelineFactory
from tests.faults.support import QUICK, first_call, incident_result
from tests.utils.builders import failure_event, register_workflow
from worker import activity_set, build_worker

URL = "/api/v1/maintenance-windows"


async def _window(p: Pipeline, **fields: Any) -> dict[str, Any]:
    body = {
        "starts_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "recurrence": "FREQ=DAILY",
        "reason": "db upgrade",
        **fields,
    }
    created = await p.http.post(URL, json=body, headers=p.tenant.headers)
    assert created.status_code == 201, created.text
    return dict(created.json())


async def _post(p: Pipeline, **fields: Any) -> dict[str, Any]:
    answer = await p.send(failure_event(**fields))
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


async def _stored(p: Pipeline) -> int:
    conn = await asyncpg.connect(p.settings.plain_database_url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", p.tenant.id)
        return int(count)
    finally:
        await conn.close()


async def test_a_recurring_window_suppresses_or_holds_and_held_incidents_call_after_it(
    pipeline: PipelineFactory,
) -> None:
    p: Pipeline = await pipeline(maintenance_recheck_s=2)
    async with (
        activity_set(p.settings) as activities,
        build_worker(p.temporal, activities, p.settings.task_queue),
        CallbackServer([Reply(200)]) as held_server,
        CallbackServer([Reply(200)]) as quiet_server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=held_server.url, retry_policy=QUICK)
        await register_workflow(
            p.http, p.tenant, name="reports", callback_url=quiet_server.url, retry_policy=QUICK
        )
        held = await _window(p, matchers={"workflow": "billing-*"}, duration_s=8, mode="hold")
        await _window(p, matchers={"workflow": "rep*"}, duration_s=3600, mode="suppress")
        window_end = (
            time.monotonic()
            + (
                datetime.fromisoformat(held["next_occurrence"]["ends_at"]) - datetime.now(UTC)
            ).total_seconds()
        )

        suppressed = await _post(p, workflow="reports")
        waiting = await _post(p, step="charge-card")
        resolved = await _post(p, step="send-invoice")
        assert (suppressed["remediation"], waiting["remediation"]) == ("suppressed", "held")
        assert resolved["remediation"] == "held"
        await asyncio.sleep(2)  # both held incidents are open and waiting at the gate
        success = failure_event(step="send-invoice", event_type="step.succeeded")
        assert (await p.send(success)).json()["remediation"] == "normal"
        closed = await incident_result(p, resolved["incident_key"])
        assert (closed.status, closed.attempts) == ("resolved", 0)
        assert held_server.calls == []

        while not held_server.calls:
            assert time.monotonic() < window_end + 10, "the held incident never called"
            await asyncio.sleep(0.1)
        finished = await incident_result(p, waiting["incident_key"])
    assert held_server.calls[0].at >= window_end
    assert {c.body["incident_key"] for c in held_server.calls} == {waiting["incident_key"]}
    assert (finished.status, finished.attempts) == ("resolved", 1)
    assert quiet_server.calls == []
    assert await _stored(p) == 4  # every event is stored, suppressed or held


async def test_ending_a_window_early_releases_the_incidents_it_held(
    pipeline: PipelineFactory,
) -> None:
    p: Pipeline = await pipeline(maintenance_recheck_s=2)
    async with (
        activity_set(p.settings) as activities,
        build_worker(p.temporal, activities, p.settings.task_queue),
        CallbackServer([Reply(200)]) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=QUICK)
        window = await _window(p, matchers={"vendor": "stripe"}, duration_s=3600, mode="hold")
        accepted = await _post(p)
        assert accepted["remediation"] == "held"
        await asyncio.sleep(4)
        assert server.calls == []
        ended = await p.http.delete(f"{URL}/{window['id']}", headers=p.tenant.headers)
        assert ended.status_code == 200 and ended.json()["ended_by"]
        released_at = time.monotonic()
        await first_call(server)
        result = await incident_result(p, accepted["incident_key"])
    assert server.calls[0].at - released_at < 2 + 4  # the recheck, plus the gate's jitter
    assert (result.status, result.attempts) == ("resolved", 1)
    assert await _stored(p) == 1
