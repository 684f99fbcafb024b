"""The escalation ladder with typed targets, on the time-skipping server: level timeouts,
acknowledge stopping the climb, fallback targets, and notifications that page nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devstack.http_target import CallbackServer, Reply
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, keep_history
from tests.utils.vendors import PagerDutyReceiver, SlackReceiver
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import AcknowledgeRequest

Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]
TWO_ATTEMPTS = {
    "max_attempts": 2,
    "initial_interval_s": 1,
    "multiplier": 1,
    "max_interval_s": 1,
    "jitter": 0.0,
}


def _pd(receiver: PagerDutyReceiver, key: str) -> dict[str, Any]:
    return {"type": "pagerduty", "routing_key": key * 32, "url": receiver.url}


def _level(name: str, *targets: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "ack_timeout_s": 600, "targets": list(targets), **extra}


async def _until(env: WorkflowEnvironment, check: Callable[[], bool], step_s: float = 1) -> None:
    """Advance time (a little) until `check` holds."""
    for _ in range(300):
        if check():
            return
        await env.sleep(step_s)
        await asyncio.sleep(0.02)
    raise AssertionError("condition never held")


async def _deliveries(http: httpx.AsyncClient, tenant: TenantCredentials) -> list[dict[str, Any]]:
    listed = await http.get("/api/v1/actions", headers=tenant.headers, params={"limit": 100})
    assert listed.status_code == 200, listed.text
    rows = [a for a in listed.json()["items"] if a["action_type"] in ("escalate", "notify")]
    return sorted(rows, key=lambda a: a["created_at"])


async def test_level_1_times_out_level_2_is_paged_and_acknowledge_stops_level_3(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with (
        CallbackServer([Reply(503)]) as callback,
        PagerDutyReceiver() as first,
        PagerDutyReceiver() as second,
        SlackReceiver([Reply(200, body="ok")]) as chat,
        PagerDutyReceiver() as third,
        SlackReceiver([Reply(200, body="ok")]) as news,
    ):
        lifecycle = ["opened", "escalated", "acknowledged", "resolved", "killed"]
        policy = {
            "levels": [
                _level("on-call", _pd(first, "a")),
                _level("team", _pd(second, "b"), {"type": "slack", "url": chat.url}),
                _level("director", _pd(third, "c")),
            ],
            "notify": [{"on": lifecycle, "targets": [{"type": "slack", "url": news.url}]}],
        }
        await register_workflow(
            http, tenant, callback_url=callback.url, retry_policy=TWO_ATTEMPTS,
            escalation_policy=policy,
        )  # fmt: skip
        handle = await skipping.start()
        await _until(skipping_env, lambda: len(first.calls) == 1)
        assert (second.calls, chat.calls) == ([], [])
        await skipping_env.sleep(601)  # level 1's acknowledge timeout
        await _until(skipping_env, lambda: len(second.calls) == 1 and len(chat.calls) == 1)
        await handle.signal(IncidentWorkflow.acknowledge, AcknowledgeRequest("alice"))
        await _until(skipping_env, lambda: len(first.calls) == 2 and len(chat.calls) == 2)
        await skipping_env.sleep(1800)  # well past level 2's timeout: level 3 stays quiet
        view = await handle.query(IncidentWorkflow.status)
        await handle.signal(IncidentWorkflow.kill)
        await handle.result()
        await keep_history(handle, "responders_ladder_ack")
    assert len(callback.calls) == 2  # both attempts failed before the ladder began
    assert (view.status, view.escalation_level, view.acknowledged_by) == (
        "acknowledged",
        2,
        "alice",
    )
    assert third.calls == []
    incident = view.incident_id
    assert first.actions() == [
        ("trigger", incident),
        ("acknowledge", incident),
        ("resolve", incident),
    ]
    assert second.actions() == first.actions()
    assert [h.rsplit(": ", 1)[0].split(" ", 1)[1] for h in news.headings()] == [
        "Opened",
        "Escalated",
        "Acknowledged",
        "Killed",
    ]
    assert first.problems == second.problems == chat.problems == news.problems == []


async def test_a_primary_that_answers_500_every_time_hands_the_page_to_the_fallback(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with (
        CallbackServer([Reply(422)]) as callback,
        PagerDutyReceiver([Reply(500)]) as primary,
        PagerDutyReceiver() as fallback,
    ):
        level = _level("on-call", _pd(primary, "p"), fallback=_pd(fallback, "f"), fallback_after=2)
        await register_workflow(
            http, tenant, callback_url=callback.url, escalation_policy={"levels": [level]}
        )
        handle = await skipping.start()
        await _until(skipping_env, lambda: len(fallback.calls) == 1)
        view = await handle.query(IncidentWorkflow.status)
        running = (await handle.describe()).status
        rows = await _deliveries(http, tenant)
        await handle.signal(IncidentWorkflow.kill)
        await handle.result()
    assert len(primary.calls) == 2  # `fallback_after` tries, then the fallback; never resolved
    incident = view.incident_id
    assert fallback.actions() == [("trigger", incident), ("resolve", incident)]  # the kill
    assert view.status == "escalated" and "fallback pagerduty" in (view.latest_action or "")
    assert running is not None and running.name == "RUNNING"
    assert [(r["parameters"]["index"], r["status"], r["result"]["http_status"]) for r in rows] == [
        (0, "failed", 500),
        (-1, "succeeded", 202),
    ]
    assert primary.problems == fallback.problems == []


async def test_an_incident_resolved_by_its_first_retry_posts_one_resolved_line_and_pages_nobody(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with (
        CallbackServer([Reply(200)]) as callback,
        PagerDutyReceiver() as pager,
        SlackReceiver([Reply(200, body="ok")]) as chat,
    ):
        policy = {
            "levels": [_level("on-call", _pd(pager, "a"))],
            "notify": [{"on": ["resolved"], "targets": [{"type": "slack", "url": chat.url}]}],
        }
        await register_workflow(http, tenant, callback_url=callback.url, escalation_policy=policy)
        handle = await skipping.start()
        result = await handle.result()
        await keep_history(handle, "responders_resolved_notification")
    rows = await _deliveries(http, tenant)
    assert (result.status, result.attempts) == ("resolved", 1)
    assert pager.calls == []
    assert [h.rsplit(": ", 1)[0] for h in chat.headings()] == [":white_check_mark: Resolved"]
    assert [(r["action_type"], r["parameters"]["event"], r["status"]) for r in rows] == [
        ("notify", "resolved", "succeeded")
    ]
    assert chat.problems == []


async def test_a_tenant_notification_rule_applies_to_a_workflow_without_a_policy_of_its_own(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with (
        CallbackServer([Reply(200)]) as callback,
        SlackReceiver([Reply(200, body="ok")]) as chat,
    ):
        policy = {
            "levels": [_level("on-call", {"type": "webhook", "url": "workflow"})],
            "notify": [{"on": ["resolved"], "targets": [{"type": "slack", "url": chat.url}]}],
        }
        put = await http.put(
            "/api/v1/escalation-policies/tenant", headers=tenant.headers, json=policy
        )
        assert put.status_code == 200, put.text
        await register_workflow(http, tenant, callback_url=callback.url)
        result = await (await skipping.start()).result()
    assert result.status == "resolved"
    assert [h.rsplit(": ", 1)[0] for h in chat.headings()] == [":white_check_mark: Resolved"]
    assert chat.problems == []


async def test_a_workflow_that_names_a_policy_is_paged_through_it(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(422)]) as callback, PagerDutyReceiver() as pager:
        named = {"levels": [_level("on-call", _pd(pager, "n"))]}
        put = await http.put(
            "/api/v1/escalation-policies/payments", headers=tenant.headers, json=named
        )
        assert put.status_code == 200, put.text
        await register_workflow(
            http, tenant, callback_url=callback.url, escalation_policy="payments"
        )
        handle = await skipping.start()
        await _until(skipping_env, lambda: len(pager.calls) == 1)
        await handle.signal(IncidentWorkflow.kill)
        await handle.result()
    assert [action for action, _ in pager.actions()] == ["trigger", "resolve"]
    assert pager.calls[0].body["routing_key"] == "n" * 32
    assert pager.problems == []
