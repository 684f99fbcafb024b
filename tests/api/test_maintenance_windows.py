"""Maintenance windows over the API: validation, listing with next occurrence, audited end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import TenantCredentials
from tests.utils.builders import failure_event, register_workflow

URL = "/api/v1/maintenance-windows"


def window(**fields: Any) -> dict[str, Any]:
    """A valid window body starting now, for an hour."""
    return {
        "matchers": {"workflow": "billing-*"},
        "starts_at": datetime.now(UTC).isoformat(),
        "duration_s": 3600,
        "mode": "suppress",
        "reason": "database upgrade",
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "duration_s"),
        ({"duration_s": None}, "duration_s"),
        ({"recurrence": "FREQ=MINUTELY"}, "recurrence"),
        ({"recurrence": "RRULE:FREQ=DAILY;UNTIL=20270101T000000"}, "recurrence"),
        ({"mode": "mute"}, "mode"),
        ({"starts_at": "2026-12-07T10:00:00"}, "starts_at"),
        ({"starts_at": "9999-12-31T23:00:00Z"}, "starts_at"),
        ({"matchers": {"vendor": "stripe api"}}, "vendor"),
        ({"reason": ""}, "reason"),
    ],
)
async def test_bad_windows_are_refused_naming_the_field(
    http: httpx.AsyncClient, tenant: TenantCredentials, fields: dict[str, Any], loc: str
) -> None:
    response = await http.post(URL, json=window(**fields), headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert loc in {part for error in response.json()["errors"] for part in error["loc"]}


async def test_windows_list_with_their_next_occurrence_and_an_end_is_audited(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    now = datetime.now(UTC)
    weekly_start = (now + timedelta(days=1)).replace(microsecond=0)
    weekly = await http.post(
        URL,
        json=window(
            starts_at=weekly_start.isoformat(),
            ends_at=(weekly_start + timedelta(hours=2)).isoformat(),
            duration_s=None,
            recurrence="FREQ=WEEKLY",
        ),
        headers=tenant.headers,
    )
    assert weekly.status_code == 201, weekly.text
    running = (await http.post(URL, json=window(mode="hold"), headers=tenant.headers)).json()
    past = window(starts_at=(now - timedelta(hours=3)).isoformat(), duration_s=60)
    assert (await http.post(URL, json=past, headers=tenant.headers)).status_code == 201

    listed = (await http.get(URL, headers=tenant.headers)).json()
    assert [w["id"] for w in listed] == [running["id"], weekly.json()["id"]]
    assert listed[0]["active_now"] and not listed[1]["active_now"]
    assert listed[1]["next_occurrence"] == {
        "starts_at": weekly_start.isoformat().replace("+00:00", "Z"),
        "ends_at": (weekly_start + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
    }
    assert listed[1]["matchers"] == {
        "workflow": "billing-*",
        "vendor": "*",
        "error_code": "*",
        "step": "*",
    }

    ended = await http.delete(f"{URL}/{running['id']}", headers=tenant.headers)
    assert ended.status_code == 200
    assert ended.json()["ended_by"] and ended.json()["ended_at"] and not ended.json()["active_now"]
    assert [w["id"] for w in (await http.get(URL, headers=tenant.headers)).json()] == [
        weekly.json()["id"]
    ]
    everything = await http.get(URL, params={"include_past": "true"}, headers=tenant.headers)
    assert len(everything.json()) == 3
    missing = await http.delete(f"{URL}/{weekly.json()['id'][:-4]}0000", headers=tenant.headers)
    assert missing.status_code == 404


async def test_intake_labels_failures_in_a_window_and_lets_successes_pass(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant, name="billing-sync")
    await register_workflow(http, tenant, name="shipping")
    before = await _quieted(http)
    await http.post(URL, json=window(matchers={"workflow": "billing-*"}), headers=tenant.headers)
    held = window(matchers={"workflow": "shipping", "error_code": "VENDOR_*"}, mode="hold")
    await http.post(URL, json=held, headers=tenant.headers)

    async def remediation(**fields: Any) -> str:
        answer = await http.post(
            "/api/v1/events", json=failure_event(**fields), headers=tenant.headers
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["remediation"])

    assert await remediation(workflow="billing-sync") == "suppressed"
    assert await remediation(workflow="shipping") == "held"
    assert await remediation(workflow="shipping", error={"code": "BAD_INPUT"}) == "normal"
    assert await remediation(workflow="billing-sync", event_type="step.succeeded") == "normal"
    after = await _quieted(http)
    assert after["suppressed"] - before["suppressed"] == 1
    assert after["held"] - before["held"] == 1


async def _quieted(http: httpx.AsyncClient) -> dict[str, float]:
    """`awfdrs_quieted_events_total` by remediation, for the maintenance-window reason."""
    text = (await http.get("/metrics")).text
    found = dict.fromkeys(("suppressed", "held"), 0.0)
    for line in text.splitlines():
        if line.startswith("awfdrs_quieted_events_total{") and "maintenance_window" in line:
            remediation = line.split('remediation="')[1].split('"')[0]
            found[remediation] = float(line.rsplit(" ", 1)[1])
    return found
