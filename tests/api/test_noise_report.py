"""The noise report over seeded events, incidents and pages: exact figures per axis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from settings import Settings
from tests.conftest import TenantCredentials

URL = "/api/v1/reports/noise"
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=3)


async def _seed(settings: Settings, tenant: TenantCredentials) -> None:
    """billing-sync/stripe: 8 failures (2 suppressed, 1 held), 1 success, 2 incidents, 3 pages;
    shipping (no vendor): 3 failures (1 deferred), 1 incident, 1 page; plus older rows."""
    events = [
        *[("billing-sync", "stripe", "step.failed", "normal", NOW)] * 5,
        *[("billing-sync", "stripe", "step.failed", "suppressed", NOW)] * 2,
        ("billing-sync", "stripe", "step.failed", "held", NOW),
        ("billing-sync", "stripe", "step.succeeded", "normal", NOW),
        *[("shipping", None, "workflow.failed", "normal", NOW)] * 2,
        ("shipping", None, "workflow.failed", "deferred", NOW),
        ("billing-sync", "stripe", "step.failed", "normal", OLD),
    ]
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        await conn.executemany(
            """INSERT INTO events (id, tenant_id, idempotency_key, body_sha256, workflow,
                   vendor, event_type, signature, remediation, correlation_id, occurred_at,
                   received_at)
               VALUES (gen_random_uuid(), $1, gen_random_uuid()::text, 'x', $2, $3, $4, 's', $5,
                   'c', $6, $6)""",
            [(tenant.id, *event) for event in events],
        )
        billing = [await _incident(conn, tenant, "billing-sync", "stripe", NOW) for _ in range(2)]
        shipping = await _incident(conn, tenant, "shipping", None, NOW)
        old = await _incident(conn, tenant, "billing-sync", "stripe", OLD)
        actions = [
            *[(billing[0], "escalate", "succeeded", NOW)] * 3,
            (billing[1], "escalate", "failed", NOW),  # not delivered: no page
            (billing[1], "retry", "succeeded", NOW),
            (shipping, "escalate", "succeeded", NOW),
            (old, "escalate", "succeeded", OLD),
        ]
        await conn.executemany(
            """INSERT INTO actions (id, tenant_id, incident_id, action_type, attempt,
                   idempotency_key, status, created_at)
               VALUES (gen_random_uuid(), $1, $2, $3, 1, gen_random_uuid()::text, $4, $5)""",
            [(tenant.id, *action) for action in actions],
        )
    finally:
        await conn.close()


async def _incident(
    conn: asyncpg.Connection, tenant: TenantCredentials, workflow: str, vendor: str | None, at: Any
) -> uuid.UUID:
    incident_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO incidents (id, tenant_id, workflow_id, run_id, source_workflow, vendor,
               signature, title, first_seen_at, last_seen_at, created_at)
           VALUES (gen_random_uuid(), $1, gen_random_uuid()::text, 'r', $2, $3, 's', '', $4, $4,
               $4) RETURNING id""",
        tenant.id,
        workflow,
        vendor,
        at,
    )
    return incident_id


def _figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        row[k]
        for k in (
            "name",
            "failures",
            "suppressed",
            "held",
            "deferred",
            "incidents",
            "pages",
            "events_per_incident",
            "pages_per_incident",
        )
    )


async def test_the_noise_report_gives_exact_figures_per_workflow_and_vendor(
    http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    await _seed(settings, tenant)
    report = await http.get(URL, headers=tenant.headers)
    assert report.status_code == 200, report.text
    body = report.json()
    billing = ("billing-sync", 8, 2, 1, 0, 2, 3, 4.0, 1.5)
    shipping = ("shipping", 3, 0, 0, 1, 1, 1, 3.0, 1.0)
    assert [_figures(row) for row in body["workflows"]] == [billing, shipping]
    assert [_figures(row) for row in body["vendors"]] == [
        ("stripe", *billing[1:]),
        (None, *shipping[1:]),
    ]
    assert _figures(body["total"]) == (None, 11, 2, 1, 1, 3, 4, 3.67, 1.33)

    week = await http.get(
        URL, params={"since": (NOW - timedelta(days=7)).isoformat()}, headers=tenant.headers
    )
    assert _figures(week.json()["workflows"][0]) == ("billing-sync", 9, 2, 1, 0, 3, 4, 3.0, 1.33)


async def test_an_empty_period_and_a_reversed_one(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    empty = (await http.get(URL, headers=tenant.headers)).json()
    assert empty["workflows"] == [] and empty["vendors"] == []
    assert _figures(empty["total"]) == (None, 0, 0, 0, 0, 0, 0, None, None)
    reversed_period = await http.get(
        URL,
        params={"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
        headers=tenant.headers,
    )
    assert reversed_period.status_code == 422
    assert reversed_period.json()["errors"][0]["loc"] == ["query", "since"]
    # Counting the default day back from the first day of year 1 is a 422, not a 500.
    too_early = await http.get(
        URL, params={"until": "0001-01-01T06:00:00Z"}, headers=tenant.headers
    )
    assert too_early.status_code == 422
    assert too_early.json()["errors"][0]["loc"] == ["query", "until"]
