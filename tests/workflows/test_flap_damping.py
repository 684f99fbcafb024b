"""Flap damping: a signature that keeps resolving and re-opening is `flapping`, held quiet."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import WorkflowHandle

from activities import mock_ai
from devstack.http_target import CallbackServer, Reply
from models.schemas.incidents import LiveState
from rules.policy import FlapDamping, PolicyError, RetryPolicy, load_policies
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, digest, failure, keep_history
from tests.utils.vendors import SlackReceiver
from workflows.flap_damping import flapping_ended_reason, quiet_label
from workflows.incident_logic import flapping_reason, is_flapping
from workflows.incident_state import IncidentResult, IncidentView, RetryPlan
from workflows.incident_workflow import IncidentWorkflow

Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]
RULES = Path(__file__).resolve().parents[2] / "rules"
QUICK = {"max_attempts": 3, "initial_interval_s": 5, "multiplier": 2, "max_interval_s": 20}
REASON = "re-opened 5 times within 3600 s; remediation waits for 900 s without a failure"


def test_the_policy_files_damp_flaps_by_default_and_a_policy_may_turn_it_off(
    tmp_path: Path,
) -> None:
    shipped = load_policies()
    assert shipped.retry.flap == FlapDamping(reopens=5, within_s=3600, quiet_s=900)
    for name in ("error_codes.yaml", "vendors.yaml", "escalation.yaml"):
        (tmp_path / name).write_text((RULES / name).read_text())
    policy = "{max_attempts: 1, initial_interval_s: 1, multiplier: 1, max_interval_s: 1"
    (tmp_path / "retry_policies.yaml").write_text(
        f"policies:\n  p: {policy}, flap: off}}\ndefault: p\nflap: {{reopens: 3, quiet_s: 60}}\n"
    )
    loaded = load_policies(tmp_path).retry
    assert (loaded.flap.reopens, loaded.flap.within_s, loaded.flap.quiet_s) == (3, 3600, 60)
    plan, _ = mock_ai.retry_plan("p", loaded.policies["p"], flap=loaded.flap)
    assert (plan.flap_reopens, is_flapping(plan)) == (0, False)
    (tmp_path / "retry_policies.yaml").write_text(
        f"policies:\n  p: {policy}, flap: {{quiet_s: 0}}}}\ndefault: p\n"
    )
    with pytest.raises(PolicyError, match=r"policies\.p\.flap\.quiet_s"):
        load_policies(tmp_path)


def test_the_plan_carries_the_files_flap_setting_unless_the_policy_has_its_own() -> None:
    policies = load_policies()
    plan, summary = mock_ai.retry_plan("quick", policies.retry.policies["quick"], 60, FlapDamping())
    assert (plan.flap_reopens, plan.flap_within_s, plan.flap_quiet_s) == (5, 3600, 900)
    assert summary == "policy quick: up to 3 attempts, 1s × 2 ≤ 10s"  # not flapping: unchanged
    assert mock_ai.flapping_summary(plan) == "" and not is_flapping(plan)
    plan.flap_count = 5
    assert is_flapping(plan)
    assert mock_ai.flapping_summary(plan) == "; flapping: re-opened 5 times within 3600 s"
    own = RetryPolicy(**QUICK, flap=FlapDamping(reopens=2, quiet_s=30))
    assert mock_ai.retry_plan("own", own, 60, FlapDamping())[0].flap_reopens == 2


def test_labels_name_the_count_the_window_and_the_quiet_period() -> None:
    plan = RetryPlan("p", 3, 5, 2, 20, 0.1, flap_reopens=5, flap_within_s=3600, flap_quiet_s=900)
    plan.flap_count = 5
    assert flapping_reason(plan) == REASON
    assert quiet_label(plan) == "remediation starts after 900 s without a failure"
    assert flapping_ended_reason(plan) == "flapping ended: a success, then 900 s without a failure"


async def _until(handle: Handle, check: Callable[[IncidentView], bool]) -> IncidentView:
    """Poll the live view until `check` holds (time is not skipped while polling)."""
    for _ in range(400):
        view = await handle.query(IncidentWorkflow.status)
        if check(view):
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached: {view.status}")


async def _transitions(settings: Settings, incident_id: str) -> list[str]:
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        rows = await conn.fetch(
            "SELECT status, reason FROM incident_transitions WHERE incident_id = $1::uuid"
            " ORDER BY id",
            incident_id,
        )
    finally:
        await conn.close()
    return [f"{r['status']}: {r['reason']}" for r in rows]


async def _resolve_times(skipping: IncidentStarter, signature: str, times: int) -> None:
    """Open and resolve (one successful callback each) the signature's incident `times` times."""
    for _ in range(times):
        result = await (await skipping.start(signature=signature)).result()
        assert (result.status, result.attempts) == ("resolved", 1)


async def _send(skipping: IncidentStarter, handle: Handle, **fields: Any) -> None:
    events = [failure(**fields)]
    await skipping.store(events, key=handle.id)
    await handle.signal(IncidentWorkflow.event_digest, digest(events, handle.id))


def _policy(chat: SlackReceiver, pager: CallbackServer) -> dict[str, Any]:
    return {
        "levels": [
            {
                "name": "on-call",
                "ack_timeout_s": 900,
                "targets": [{"type": "webhook", "url": pager.url}],
            }
        ],
        "notify": [{"on": ["opened", "flapping"], "targets": [{"type": "slack", "url": chat.url}]}],
    }


async def test_the_sixth_open_within_the_window_is_flapping_says_so_once_and_calls_after_quiet(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    signature = uuid.uuid4().hex
    callback = CallbackServer([Reply(200)])
    async with callback, SlackReceiver() as chat, CallbackServer([Reply(202)]) as pager:
        await register_workflow(
            http, tenant, callback_url=callback.url, escalation_policy=_policy(chat, pager)
        )
        await _resolve_times(skipping, signature, 5)
        assert len(callback.calls) == 5
        sixth = await skipping.start(signature=signature)
        view = await _until(sixth, lambda v: v.status == "flapping")
        assert (view.flap_count, view.attempts) == (5, 0)
        assert view.next_action == "remediation starts after 900 s without a failure"
        quiet_until = view.next_action_at
        assert quiet_until is not None
        await _send(skipping, sixth)  # a failure while flapping: quiet again, still no call
        view = await _until(sixth, lambda v: v.event_count == 2)
        assert view.status == "flapping" and len(callback.calls) == 5
        assert view.next_action_at is not None and view.next_action_at > quiet_until
        listed = await http.get(
            "/api/v1/incidents", params={"status": "flapping"}, headers=tenant.headers
        )
        assert [i["id"] for i in listed.json()["items"]] == [view.incident_id]
        assert LiveState.model_validate(view, from_attributes=True).flap_count == 5  # the API's
        timeline = await http.get(
            f"/api/v1/incidents/{view.incident_id}/timeline", headers=tenant.headers
        )
        states = [(e["summary"], e["cause"]) for e in timeline.json()["entries"]]
        assert ("status → flapping", REASON) in states
        result = await sixth.result()  # the quiet period passes (skipped): remediation runs
        await keep_history(sixth, "flap_damping_remediates")
        assert (result.status, result.attempts, result.reason) == (
            "resolved", 1, "retry #1 succeeded"
        )  # fmt: skip
        assert len(callback.calls) == 6
        assert chat.headings().count(":repeat: Flapping: billing-sync") == 1
        assert chat.headings().count(":large_yellow_circle: Opened: billing-sync") == 5
        assert chat.problems == [] and pager.calls == []
    transitions = await _transitions(settings, view.incident_id)
    assert f"flapping: {REASON}" in transitions
    assert transitions[-2:] == [
        "remediating: flapping over: 900 s without a failure; remediation starts",
        "resolved: retry #1 succeeded",
    ]


async def test_a_flap_episode_notifies_once_and_a_success_while_flapping_resolves_after_quiet(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    signature = uuid.uuid4().hex
    callback = CallbackServer([Reply(200)])
    policy = {**QUICK, "flap": {"reopens": 2, "within_s": 3600, "quiet_s": 60}}
    async with callback, SlackReceiver() as chat, CallbackServer([Reply(202)]) as pager:
        await register_workflow(
            http,
            tenant,
            callback_url=callback.url,
            retry_policy=policy,
            escalation_policy=_policy(chat, pager),
        )
        await _resolve_times(skipping, signature, 2)
        third = await skipping.start(signature=signature)
        await _until(third, lambda v: v.status == "flapping")
        assert (await third.result()).status == "resolved"  # quiet, then a successful call
        fourth = await skipping.start(signature=signature)
        view = await _until(fourth, lambda v: v.status == "flapping")
        assert view.flap_count == 3
        await _send(skipping, fourth, event_type="step.succeeded")
        await _until(fourth, lambda v: v.event_count == 2)
        assert (await fourth.query(IncidentWorkflow.status)).status == "flapping"
        result = await fourth.result()
        await keep_history(fourth, "flap_damping_success_ends")
        assert (result.status, result.attempts) == ("resolved", 0)
        assert result.reason == "flapping ended: a success, then 60 s without a failure"
        assert len(callback.calls) == 3  # two before flapping, one after the third's quiet
        # One `flapping` message for the episode; flapping incidents do not say `opened`.
        assert [h.split(":", 2)[1] for h in chat.headings()] == ["large_yellow_circle"] * 2 + [
            "repeat"
        ]


async def test_operators_pause_resume_and_kill_a_flapping_incident(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    signature = uuid.uuid4().hex
    policy = {**QUICK, "flap": {"reopens": 1, "quiet_s": 60}}
    async with CallbackServer([Reply(200)]) as callback:
        await register_workflow(http, tenant, callback_url=callback.url, retry_policy=policy)
        await _resolve_times(skipping, signature, 1)
        handle = await skipping.start(signature=signature, max_signals_per_run=2)
        await _until(handle, lambda v: v.status == "flapping")
        await _send(skipping, handle)
        await _send(skipping, handle)  # the run's second signal: it continues as new
        view = await _until(handle, lambda v: v.runs == 2)
        assert (view.status, view.flap_count, view.event_count) == ("flapping", 1, 3)
        await handle.signal(IncidentWorkflow.pause)
        await _until(handle, lambda v: v.status == "paused")
        await handle.signal(IncidentWorkflow.resume)
        await _until(handle, lambda v: v.status == "flapping")
        await handle.signal(IncidentWorkflow.kill)
        result = await handle.result()
    assert (result.status, result.attempts) == ("killed", 0)
    assert len(callback.calls) == 1


async def test_flap_off_leaves_a_re_opened_signature_to_ordinary_remediation(
    skipping: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    signature = uuid.uuid4().hex
    async with CallbackServer([Reply(200)]) as callback:
        await register_workflow(
            http, tenant, callback_url=callback.url, retry_policy={**QUICK, "flap": "off"}
        )
        await _resolve_times(skipping, signature, 3)
    assert len(callback.calls) == 3
