"""Typed responder targets on the real dev server: the incident's lifecycle mirrored to
PagerDuty, Opsgenie and Slack stand-ins that check each vendor's rules, and credentials
that never leave the sealed policy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle

from devstack.http_target import CallbackServer, Reply
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, keep_history
from tests.utils.responders import PD_SECRET, add_secret, pagerduty_event, post_pagerduty
from tests.utils.vendors import OpsgenieReceiver, PagerDutyReceiver, SlackReceiver
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import AcknowledgeRequest, ResolveRequest

Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]
ROUTING_KEY = "PDMARKERrk" + "a1b2c3d4e5f6a7b8c9d0e1"  # 32 characters
API_KEY = "OGMARKERak-0123456789abcdef"
SLACK_TOKEN = "SLMARKERhooktoken0123"


async def _eventually(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


def _policy(pd: PagerDutyReceiver, og: OpsgenieReceiver, slack: SlackReceiver) -> dict[str, Any]:
    return {
        "levels": [
            {
                "name": "on-call",
                "ack_timeout_s": 900,
                "severity": "critical",
                "targets": [
                    {"type": "pagerduty", "routing_key": ROUTING_KEY, "url": pd.url},
                    {
                        "type": "opsgenie",
                        "api_key": API_KEY,
                        "url": og.base,
                        "responders": [{"type": "team", "name": "payments"}],
                    },
                    {"type": "slack", "url": f"{slack.base}/services/T0/B0/{SLACK_TOKEN}"},
                ],
            }
        ]
    }


async def _escalated(
    live: IncidentStarter,
    http: httpx.AsyncClient,
    receivers: tuple[PagerDutyReceiver, OpsgenieReceiver, SlackReceiver],
    callback: CallbackServer,
) -> tuple[Handle, str]:
    """Register the workflow with the three targets, fail it for good, wait for the pages."""
    await register_workflow(
        http, live.tenant, callback_url=callback.url, escalation_policy=_policy(*receivers)
    )
    handle = await live.start()
    await _eventually(lambda: all(r.calls for r in receivers))
    return handle, (await handle.query(IncidentWorkflow.status)).incident_id


async def _control(
    http: httpx.AsyncClient, tenant: TenantCredentials, incident: str, op: str
) -> None:
    sent = await http.post(f"/api/v1/incidents/{incident}/{op}", headers=tenant.headers)
    assert sent.status_code == 202, sent.text


async def _deliveries(http: httpx.AsyncClient, tenant: TenantCredentials) -> list[dict[str, Any]]:
    listed = await http.get("/api/v1/actions", headers=tenant.headers, params={"limit": 100})
    assert listed.status_code == 200, listed.text
    rows = [a for a in listed.json()["items"] if a["action_type"] in ("escalate", "notify")]
    return sorted(rows, key=lambda a: a["created_at"])


async def test_each_vendor_sees_trigger_acknowledge_resolve_under_one_key_per_incident(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    async with (
        CallbackServer([Reply(422)]) as callback,
        PagerDutyReceiver() as pd,
        OpsgenieReceiver() as og,
        SlackReceiver([Reply(200, body="ok")]) as slack,
    ):
        handle, incident = await _escalated(live, http, (pd, og, slack), callback)
        await _control(http, tenant, incident, "acknowledge")
        await _eventually(
            lambda: len(pd.calls) == 2 and len(og.calls) == 2 and len(slack.calls) == 2
        )
        await _control(http, tenant, incident, "resolve")
        result = await asyncio.wait_for(handle.result(), 60)
        await keep_history(handle, "responders_mirrored")
    assert result.status == "resolved"
    assert pd.problems == og.problems == slack.problems == []
    assert pd.actions() == [("trigger", incident), ("acknowledge", incident), ("resolve", incident)]
    assert og.actions() == [("create", incident), ("acknowledge", incident), ("close", incident)]
    assert og.calls[0].headers["authorization"] == f"GenieKey {API_KEY}"
    assert og.calls[0].body["priority"] == "P1"  # the level's `critical`
    headings = [h.rsplit(": ", 1)[0] for h in slack.headings()]
    assert headings == [
        ":rotating_light: Escalated",
        ":eyes: Acknowledged",
        ":white_check_mark: Closed",
    ]
    rows = await _deliveries(http, tenant)  # a level's targets are sent to at once
    kinds = ("pagerduty", "opsgenie", "slack")
    assert sorted(
        (r["action_type"], r["parameters"]["target_type"], r["status"]) for r in rows
    ) == (
        sorted(
            [("escalate", k, "succeeded") for k in kinds]
            + [("notify", k, "succeeded") for k in kinds] * 2
        )
    )
    assert {r["result"]["http_status"] for r in rows} == {200, 202}


async def test_an_acknowledge_or_resolve_from_a_responder_is_not_echoed_back_to_it(
    live: IncidentStarter, http: httpx.AsyncClient
) -> None:
    async with (
        CallbackServer([Reply(422)]) as callback,
        PagerDutyReceiver() as pd,
        OpsgenieReceiver() as og,
        SlackReceiver([Reply(200, body="ok")]) as slack,
    ):
        handle, incident = await _escalated(live, http, (pd, og, slack), callback)
        await handle.signal(
            IncidentWorkflow.acknowledge, AcknowledgeRequest("pd-user", "pagerduty")
        )
        await _eventually(lambda: len(og.calls) == 2 and len(slack.calls) == 2)
        await handle.signal(IncidentWorkflow.resolve, ResolveRequest("done", "og-user", "opsgenie"))
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.status == "resolved"
    assert pd.actions() == [("trigger", incident), ("resolve", incident)]
    assert og.actions() == [("create", incident), ("acknowledge", incident)]
    assert len(slack.calls) == 3
    assert pd.problems == og.problems == slack.problems == []


async def test_no_credential_appears_in_logs_api_answers_or_workflow_history(
    live: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # As in production (observability.configure_logging): httpx's INFO line names each URL.
    caplog.set_level(logging.WARNING, logger="httpx")
    async with (
        CallbackServer([Reply(422)]) as callback,
        PagerDutyReceiver([Reply(429, headers={"Retry-After": "1"}), Reply(202)]) as pd,
        OpsgenieReceiver() as og,
        SlackReceiver([Reply(200, body="ok")]) as slack,
    ):
        handle, incident = await _escalated(live, http, (pd, og, slack), callback)
        await _eventually(lambda: len(pd.calls) == 2)  # the 429, then the page after 1s
        await _control(http, tenant, incident, "kill")
        await asyncio.wait_for(handle.result(), 60)
        history = (await handle.fetch_history()).to_json()
    answers = [
        (await http.get(path, headers=tenant.headers)).text
        for path in (
            "/api/v1/workflows",
            "/api/v1/workflows/billing-sync",
            f"/api/v1/incidents/{incident}",
            f"/api/v1/incidents/{incident}/timeline",
            "/api/v1/actions?limit=100",
        )
    ]
    assert pd.calls[0].body["routing_key"] == ROUTING_KEY  # the markers did travel, to vendors
    assert pd.calls[1].at - pd.calls[0].at >= 1.0  # the 429's Retry-After was honoured
    for where, text in [
        ("logs", caplog.text),
        ("history", history),
        *(("API", a) for a in answers),
    ]:
        for marker in ("PDMARKER", "OGMARKER", "SLMARKER"):
            assert marker not in text, f"{marker} appears in {where}"
    shown = (await http.get("/api/v1/workflows/billing-sync", headers=tenant.headers)).json()
    targets = shown["escalation_policy"]["levels"][0]["targets"]
    assert [t.get("routing_key") or t.get("api_key") or t["url"] for t in targets] == [
        f"••••{ROUTING_KEY[-4:]}",
        f"••••{API_KEY[-4:]}",
        f"••••{SLACK_TOKEN[-4:]}",
    ]


async def test_a_signed_pagerduty_acknowledge_reaches_the_others_but_is_not_echoed_to_pagerduty(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    async with (
        CallbackServer([Reply(422)]) as callback,
        PagerDutyReceiver() as pd,
        OpsgenieReceiver() as og,
        SlackReceiver([Reply(200, body="ok")]) as slack,
    ):
        handle, incident = await _escalated(live, http, (pd, og, slack), callback)
        body = pagerduty_event("incident.acknowledged", incident, who="Jane Doe")
        answer = await post_pagerduty(http, tenant.id, body, PD_SECRET)
        await _eventually(lambda: len(og.calls) == 2 and len(slack.calls) == 2)
        view = await handle.query(IncidentWorkflow.status)
        await _control(http, tenant, incident, "resolve")
        await asyncio.wait_for(handle.result(), 60)
    assert answer.status_code == 202, answer.text
    assert (view.status, view.acknowledged_by) == ("acknowledged", "pagerduty:Jane Doe")
    assert pd.actions() == [("trigger", incident), ("resolve", incident)]
    assert og.actions() == [("create", incident), ("acknowledge", incident), ("close", incident)]
    assert pd.problems == og.problems == slack.problems == []
