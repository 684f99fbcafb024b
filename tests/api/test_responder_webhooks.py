"""Two-way: PagerDuty and Opsgenie webhooks acknowledge and resolve incidents, once, named."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from temporalio.client import WorkflowHandle

from devstack.http_target import CallbackServer, Reply
from tests.api.incident_views import timeline, wait_for_incident
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter
from tests.utils.responders import (
    PD_SECRET,
    add_secret,
    opsgenie_action,
    pagerduty_event,
    post_opsgenie,
    post_pagerduty,
)
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow

SLOW = {
    "max_attempts": 5,
    "initial_interval_s": 3600,
    "multiplier": 1,
    "max_interval_s": 3600,
    "jitter": 0,
}
Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]


async def _waiting(
    live: IncidentStarter, http: httpx.AsyncClient, server: CallbackServer
) -> tuple[Handle, str]:
    """An incident waiting an hour for its next attempt; its handle and id."""
    await register_workflow(http, live.tenant, callback_url=server.url, retry_policy=SLOW)
    handle = await live.start()
    incident = await wait_for_incident(http, live.tenant, handle.id, "waiting")
    return handle, str(incident["id"])


async def _escalated(
    live: IncidentStarter, http: httpx.AsyncClient, callback: CallbackServer, pager: CallbackServer
) -> tuple[Handle, str]:
    """An incident whose callback answered permanently (422): escalated, its page sent."""
    await register_workflow(
        http, live.tenant, callback_url=callback.url, escalation_webhook_url=pager.url
    )
    handle = await live.start()
    incident = await wait_for_incident(http, live.tenant, handle.id, "escalated")
    return handle, str(incident["id"])


async def _signals(handle: Handle, name: str) -> int:
    history = await handle.fetch_history()
    return sum(
        event.workflow_execution_signaled_event_attributes.signal_name == name
        for event in history.events
        if event.HasField("workflow_execution_signaled_event_attributes")
    )


def _responder_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["kind"] == "responder"]


async def test_a_signed_pagerduty_resolve_resolves_the_incident_and_names_who(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    async with CallbackServer([Reply(503)]) as server:
        handle, incident_id = await _waiting(live, http, server)
        body = pagerduty_event("incident.resolved", incident_id, who="Jane Doe")
        answer = await post_pagerduty(http, tenant.id, body, PD_SECRET)
        result = await asyncio.wait_for(handle.result(), 30)
    assert answer.status_code == 202, answer.text
    assert answer.json() | {"incident_id": None} == {
        "status": "signalled",
        "reason": "signalled",
        "incident_id": None,
        "signal": "resolve",
    }
    assert answer.json()["incident_id"] == incident_id
    assert result.status == "resolved"
    entries = await timeline(http, tenant, incident_id)
    [receipt] = _responder_rows(entries)
    assert receipt["cause"] == "pagerduty:Jane Doe"
    assert receipt["summary"] == "resolve from PagerDuty: signalled"
    assert receipt["details"]["actor_id"] == "PLH1HKV"
    assert receipt["details"]["delivery_id"] == body["event"]["id"]
    closed = [e for e in entries if e["summary"] == "status → resolved"]
    assert closed and closed[0]["cause"] == "resolved in PagerDuty by Jane Doe", entries


async def test_a_bad_signature_is_a_401_and_the_incident_is_unchanged(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    async with CallbackServer([Reply(503)]) as server:
        handle, incident_id = await _waiting(live, http, server)
        body = pagerduty_event("incident.resolved", incident_id)
        refused = [
            await post_pagerduty(http, tenant.id, body, "not-the-secret-at-all"),
            await post_pagerduty(http, tenant.id, body, signature=""),
            await post_pagerduty(http, tenant.id, body, signature="v1=00ff"),
        ]
        await asyncio.sleep(0.5)  # time for a wrongly sent signal to be taken
        view = await handle.query(IncidentWorkflow.status)
        resolves = await _signals(handle, "resolve")
        await handle.signal(IncidentWorkflow.kill)
    for response in refused:
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "X-PagerDuty-Signature" in response.json()["detail"]
        assert "www-authenticate" not in response.headers
    assert view.status == "waiting"
    assert resolves == 0
    assert _responder_rows(await timeline(http, tenant, incident_id)) == []


async def test_a_redelivered_event_acts_once(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    async with CallbackServer([Reply(422)]) as callback, CallbackServer([Reply(202)]) as pager:
        handle, incident_id = await _escalated(live, http, callback, pager)
        body = pagerduty_event("incident.acknowledged", incident_id, who="Sam Oncall")
        first = await post_pagerduty(http, tenant.id, body, PD_SECRET)
        again = await post_pagerduty(http, tenant.id, body, PD_SECRET)
        acknowledged = await wait_for_incident(http, tenant, handle.id, "acknowledged")
        acks = await _signals(handle, "acknowledge")
        view = await handle.query(IncidentWorkflow.status)
        await handle.signal(IncidentWorkflow.kill)
    assert first.json()["status"] == "signalled" and first.json()["signal"] == "acknowledge"
    assert again.status_code == 202 and again.json()["status"] == "duplicate", again.text
    assert acks == 1
    assert view.acknowledged_by == "pagerduty:Sam Oncall"
    receipts = _responder_rows(await timeline(http, tenant, acknowledged["id"]))
    assert [r["cause"] for r in receipts] == ["pagerduty:Sam Oncall"]


async def test_opsgenie_acknowledge_then_close(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    token = (await add_secret(http, tenant, "opsgenie"))["generated_token"]
    async with CallbackServer([Reply(422)]) as callback, CallbackServer([Reply(202)]) as pager:
        handle, incident_id = await _escalated(live, http, callback, pager)
        wrong = await post_opsgenie(
            http, tenant.id, opsgenie_action("Close", incident_id), "not-the-token"
        )
        ack = await post_opsgenie(
            http, tenant.id, opsgenie_action("Acknowledge", incident_id), token
        )
        await wait_for_incident(http, tenant, handle.id, "acknowledged")
        view = await handle.query(IncidentWorkflow.status)
        close = await post_opsgenie(
            http, tenant.id, opsgenie_action("Close", incident_id, username="ann"), token
        )
        result = await asyncio.wait_for(handle.result(), 30)
    assert wrong.status_code == 401 and wrong.headers["content-type"] == "application/problem+json"
    assert ack.json()["status"] == "signalled" and ack.json()["signal"] == "acknowledge"
    assert close.json()["status"] == "signalled" and close.json()["signal"] == "resolve"
    assert view.acknowledged_by == "opsgenie:john.smith"
    assert result.status == "resolved"
    entries = await timeline(http, tenant, incident_id)
    assert [(r["summary"], r["cause"]) for r in _responder_rows(entries)] == [
        ("acknowledge from Opsgenie: signalled", "opsgenie:john.smith"),
        ("resolve from Opsgenie: signalled", "opsgenie:ann"),
    ]
    assert any(e["cause"] == "resolved in Opsgenie by ann" for e in entries), entries


async def test_a_resolve_for_an_incident_already_closed_is_recorded_but_sends_nothing(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    async with CallbackServer([Reply(503)]) as server:
        handle, incident_id = await _waiting(live, http, server)
        await handle.signal(IncidentWorkflow.kill)
        await asyncio.wait_for(handle.result(), 30)
        await wait_for_incident(http, tenant, handle.id, "killed")
        body = pagerduty_event("incident.resolved", incident_id)
        answer = await post_pagerduty(http, tenant.id, body, PD_SECRET)
    assert answer.status_code == 202
    assert answer.json()["status"] == "ignored"
    assert answer.json()["reason"] == "incident already killed"
    [receipt] = _responder_rows(await timeline(http, tenant, incident_id))
    assert receipt["summary"] == "resolve from PagerDuty: incident already killed"


async def test_two_copies_arriving_together_act_once(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    async with CallbackServer([Reply(503)]) as server:
        handle, incident_id = await _waiting(live, http, server)
        body = pagerduty_event("incident.resolved", incident_id)
        answers = await asyncio.gather(
            post_pagerduty(http, tenant.id, body, PD_SECRET),
            post_pagerduty(http, tenant.id, body, PD_SECRET),
        )
        result = await asyncio.wait_for(handle.result(), 30)
        resolves = await _signals(handle, "resolve")
    assert sorted(a.json()["status"] for a in answers) == ["duplicate", "signalled"]
    assert resolves == 1
    assert result.status == "resolved"
    assert len(_responder_rows(await timeline(http, tenant, incident_id))) == 1
