"""The operator CLI as a newcomer runs it: a subprocess against a real API process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from devstack.http_target import CallbackServer, Reply
from devstack.process import script_path
from settings import Settings
from tests.api.served import served_api
from tests.conftest import TenantCredentials
from tests.utils.builders import failure_event, register_workflow
from tests.utils.incidents import IncidentStarter
from tests.utils.vendors import PagerDutyReceiver, SlackReceiver

SLOW = {
    "max_attempts": 5,
    "initial_interval_s": 3600,
    "multiplier": 1,
    "max_interval_s": 3600,
    "jitter": 0,
}
ONE_ATTEMPT = {**SLOW, "max_attempts": 1}


@pytest.fixture(scope="module")
def api_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m api` on the session's servers, reached over a socket as the CLI does."""
    with served_api(settings, tmp_path_factory.mktemp("cli") / "api.log") as served:
        yield served.url


def awfdrs(api_url: str, tenant: TenantCredentials, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `awfdrs <args>` with the tenant's key, away from any local stack or config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWFDRS_")}
    env |= {
        "AWFDRS_API_URL": api_url,
        "AWFDRS_API_KEY": tenant.api_key,
        "AWFDRS_CLI_CONFIG": "/nonexistent/awfdrs-cli.json",
    }
    return subprocess.run(
        [script_path("awfdrs"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).parent,  # no .awfdrs stack here
    )


async def run_ok(api_url: str, tenant: TenantCredentials, *args: str) -> str:
    """Run the CLI off the event loop (the test's worker shares it) and return its stdout."""
    result = await asyncio.to_thread(awfdrs, api_url, tenant, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def live_view(
    http: httpx.AsyncClient, tenant: TenantCredentials, ref: str, status: str
) -> dict[str, Any]:
    """Wait until the incident's live view reaches `status`; return the stored + live detail."""
    detail: dict[str, Any] = {}
    for _ in range(300):
        response = await http.get(f"/api/v1/incidents/{ref}", headers=tenant.headers)
        detail = response.json() if response.status_code == 200 else {}
        if (detail.get("live") or {}).get("status") == status:
            return detail
        await asyncio.sleep(0.1)
    raise AssertionError(f"incident {ref} never reached {status}: {detail}")


async def test_show_names_an_incident_by_workflow_id_and_prints_readable_fields(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials, api_url: str
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW)
        handle = await live.start()
        detail = await live_view(http, tenant, handle.id, "waiting")

        shown = await run_ok(api_url, tenant, "incidents", "show", handle.id)
        lines = shown.splitlines()
        assert f"id: {detail['id']}" in lines
        assert f"workflow_id: {handle.id}" in lines
        # The live view is a block of its own fields, not a JSON document on one line.
        live_block = lines[lines.index("live:") + 1 :]
        assert "  status: waiting" in live_block
        assert f"  next_action: {detail['live']['next_action']}" in live_block
        assert "\\u" not in shown and '{"' not in shown

        as_json = json.loads(
            await run_ok(api_url, tenant, "incidents", "show", handle.id, "--json")
        )
        assert as_json["id"] == detail["id"]
        await run_ok(api_url, tenant, "incidents", "kill", handle.id, "--reason", "test over")


async def test_every_control_takes_a_reason_and_acknowledge_takes_by(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials, api_url: str
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW)
        await register_workflow(
            http, tenant, name="one-shot", callback_url=server.url, retry_policy=ONE_ATTEMPT
        )
        waiting = await live.start()
        escalating = await live.start(workflow="one-shot")
        await live_view(http, tenant, waiting.id, "waiting")
        ref = waiting.id

        paused = await run_ok(
            api_url, tenant, "incidents", "pause", ref, "--reason", "vendor maintenance", "--json"
        )
        assert json.loads(paused)["signal"] == "pause"
        assert (await live_view(http, tenant, ref, "paused"))["live"]["paused"] is True
        await run_ok(api_url, tenant, "incidents", "resume", ref, "--reason", "maintenance over")
        assert (await live_view(http, tenant, ref, "waiting"))["live"]["paused"] is False

        await live_view(http, tenant, escalating.id, "escalated")
        await run_ok(api_url, tenant, "incidents", "acknowledge", escalating.id, "--by", "alice")
        acknowledged = await live_view(http, tenant, escalating.id, "acknowledged")
        # Who acknowledged comes from the credential; the typed name is the audit row's note.
        assert acknowledged["live"]["acknowledged_by"].startswith("api-key:")

        await run_ok(api_url, tenant, "incidents", "resolve", escalating.id, "--reason", "fixed")
        await run_ok(api_url, tenant, "incidents", "kill", ref, "--reason", "cli test")
        assert (await asyncio.wait_for(escalating.result(), 30)).reason == "fixed"
        assert (await asyncio.wait_for(waiting.result(), 30)).reason == "cli test"


async def test_approve_and_reject_decide_a_gated_call_and_a_refusal_exits_with_the_reason(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials, api_url: str
) -> None:
    gated = {**SLOW, "approval": "every"}
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=gated)
        approved, rejected = await live.start(), await live.start()
        await live_view(http, tenant, approved.id, "awaiting_approval")
        await live_view(http, tenant, rejected.id, "awaiting_approval")
        answer = await run_ok(
            api_url, tenant, "incidents", "approve", approved.id, "--reason", "ok", "--json"
        )
        await live_view(http, tenant, approved.id, "waiting")  # retry #1 answered 503
        refused = await asyncio.to_thread(
            awfdrs, api_url, tenant, "incidents", "approve", approved.id
        )
        await run_ok(api_url, tenant, "incidents", "reject", rejected.id, "--reason", "freeze")
        await live_view(http, tenant, rejected.id, "escalated")
        timeline = await http.get(
            f"/api/v1/incidents/{rejected.id}/timeline", headers=tenant.headers
        )
        for handle in (approved, rejected):
            await run_ok(api_url, tenant, "incidents", "kill", handle.id)
    assert json.loads(answer)["signal"] == "approve"
    assert len(server.calls) == 1
    assert refused.returncode != 0
    assert (
        "409" in refused.stderr and "incident is waiting, not awaiting approval" in refused.stderr
    )
    causes = [e["cause"] for e in timeline.json()["entries"] if e["kind"] == "state"]
    assert any(c.startswith("rejected by api-key:") and c.endswith(": freeze") for c in causes)


async def test_forcing_an_unknown_vendor_fails_and_names_it(
    http: httpx.AsyncClient, tenant: TenantCredentials, api_url: str
) -> None:
    phantom = f"nosuchvendor-{uuid.uuid4().hex[:6]}"
    refused = await asyncio.to_thread(awfdrs, api_url, tenant, "vendors", "open", phantom)
    assert refused.returncode != 0
    assert "404" in refused.stderr and f"vendor '{phantom}' is unknown" in refused.stderr
    assert phantom not in await run_ok(api_url, tenant, "vendors")

    # Known: in the policy files, or named by one of the tenant's events.
    await register_workflow(http, tenant)
    named = f"acme-pay-{uuid.uuid4().hex[:6]}"
    sent = await http.post(
        "/api/v1/events", headers=tenant.headers, json=failure_event(vendor=named)
    )
    assert sent.status_code == 202, sent.text
    for vendor in ("stripe", named):
        opened = json.loads(await run_ok(api_url, tenant, "vendors", "open", vendor, "--json"))
        assert opened["circuit_state"] == "forced_open"
        await run_ok(api_url, tenant, "vendors", "reset", vendor)


async def _insert_incidents(settings: Settings, tenant: TenantCredentials, count: int) -> None:
    """Store closed incident rows straight away: only their listing is under test."""
    now = datetime.now(UTC)
    rows = [
        (
            uuid.uuid4(),
            tenant.id,
            f"incident:{tenant.id}:{n:064x}",
            "run-1",
            "resolved",
            "billing-sync",
            f"{n:064x}",
            now - timedelta(seconds=n),
        )
        for n in range(count)
    ]
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        await conn.executemany(
            "INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, source_workflow,"
            " signature, title, first_seen_at, last_seen_at, closed_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, '', $8, $8, $8)",
            rows,
        )
    finally:
        await conn.close()


async def test_a_list_says_when_more_exist_and_all_follows_every_page(
    settings: Settings, tenant: TenantCredentials, api_url: str
) -> None:
    await _insert_incidents(settings, tenant, 501)  # two pages of the API's largest size

    first = await asyncio.to_thread(awfdrs, api_url, tenant, "incidents", "list")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == 1 + 50
    assert "showing 50 — more exist, use --limit N or --all" in first.stderr

    every = await asyncio.to_thread(awfdrs, api_url, tenant, "incidents", "list", "--all", "--json")
    ids = [item["id"] for item in json.loads(every.stdout)]
    assert len(ids) == len(set(ids)) == 501
    assert every.stderr == ""

    exact = await asyncio.to_thread(
        awfdrs, api_url, tenant, "incidents", "list", "--limit", "501", "--json"
    )
    assert len(json.loads(exact.stdout)) == 501 and "more exist" not in exact.stderr


async def test_escalation_policies_are_listed_and_shown_masked_and_notify_test_reaches_a_target(
    http: httpx.AsyncClient, tenant: TenantCredentials, api_url: str
) -> None:
    routing_key = "c" * 28 + "9z8y"
    async with PagerDutyReceiver() as pager, SlackReceiver([Reply(200, body="ok")]) as chat:
        level = {
            "name": "on-call",
            "ack_timeout_s": 60,
            "targets": [{"type": "pagerduty", "routing_key": routing_key, "url": pager.url}],
        }
        rule = {"on": ["resolved"], "targets": [{"type": "slack", "url": chat.url}]}
        policy = {"levels": [level], "notify": [rule]}
        await register_workflow(http, tenant, escalation_policy=policy)
        listed = json.loads(await run_ok(api_url, tenant, "escalation-policies", "list", "--json"))
        shown = await run_ok(api_url, tenant, "escalation-policies", "show", "billing-sync")
        paged = await run_ok(api_url, tenant, "notify", "test", "billing-sync:1:0", "--json")
        told = await run_ok(api_url, tenant, "notify", "test", "billing-sync:0", "--json")
        missing = await asyncio.to_thread(
            awfdrs, api_url, tenant, "notify", "test", "billing-sync:2"
        )
    assert [(p["name"], p["targets"]) for p in listed] == [
        ("default", "L1:webhook, L2:webhook"),
        ("billing-sync", "L1:pagerduty"),
    ]
    assert "••••9z8y" in shown and routing_key not in shown
    assert [(s["event"], s["http_status"]) for s in json.loads(paged)] == [
        ("trigger", 202),
        ("resolve", 202),
    ]
    assert [c.body["event_action"] for c in pager.calls] == ["trigger", "resolve"]
    assert len({c.body["dedup_key"] for c in pager.calls}) == 1
    assert [s["delivered"] for s in json.loads(told)] == [True]
    assert "Test message" in chat.headings()[0]
    assert pager.problems == chat.problems == []
    assert missing.returncode != 0 and "no target at level 2, index 0" in missing.stderr
