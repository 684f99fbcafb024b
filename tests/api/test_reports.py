"""The summary report over seeded incidents with known timestamps; `awfdrs report` and its plot."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from settings import Settings
from tests.api.served import served_api
from tests.conftest import TenantCredentials

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Seed:
    """One incident to store: when it was seen and closed, and what happened to it."""

    workflow: str
    status: str
    first_s: int  # seconds after the base time
    closed_after_s: int | None = None
    events: int = 1
    transitions: list[tuple[str, int]] = field(default_factory=list)  # (status, s after base)
    actions: list[tuple[str, str, bool]] = field(default_factory=list)  # (type, status, started)
    operator_resolved: bool = False


SEEDS = [
    # billing: A resolves on its own after 60 s; B is resolved by an operator after 180 s.
    Seed("billing", "resolved", 0, 60, events=2, actions=[("retry", "failed", True)] * 2),
    Seed("billing", "resolved", 10, 180, events=4, operator_resolved=True),
    # C is escalated at 100 s, acknowledged at 160 s (TTA 60), resolved after 600 s.
    Seed(
        "billing",
        "resolved",
        20,
        600,
        events=6,
        transitions=[("escalated", 100), ("acknowledged", 160)],
        actions=[("escalate", "succeeded", True)],
    ),
    # D is escalated at 200 s (and again at 400 s), acknowledged at 500 s (TTA 300), still open.
    Seed(
        "billing",
        "acknowledged",
        25,
        events=8,
        transitions=[("escalated", 200), ("escalated", 400), ("acknowledged", 500)],
        actions=[("escalate", "succeeded", True), ("escalate", "failed", True)],
    ),
    # shipping: E killed after one call (a second never started); F still open.
    Seed(
        "shipping",
        "killed",
        30,
        60,
        events=1,
        actions=[("retry", "failed", True), ("retry", "pending", False)],
    ),
    Seed("shipping", "open", 40, events=3),
    # H, an hour later, resolves on its own after 120 s.
    Seed("shipping", "resolved", 3605, 120, events=1),
    # Before the window: not counted.
    Seed("billing", "resolved", -1, 5, events=100),
]


async def _store(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, base: datetime, seed: Seed
) -> None:
    """Store one seeded incident with its transitions, actions and operator resolve."""
    first = base + timedelta(seconds=seed.first_s)
    closed = first + timedelta(seconds=seed.closed_after_s) if seed.closed_after_s else None
    incident_id = await conn.fetchval(
        """INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, title,
               source_workflow, signature, event_count, first_seen_at, last_seen_at, closed_at)
           VALUES (gen_random_uuid(), $1, $2, 'run', $3, '', $4, 'sig', $5, $6, $6, $7)
           RETURNING id""",
        tenant_id,
        f"incident:{uuid.uuid4()}",
        seed.status,
        seed.workflow,
        seed.events,
        first,
        closed,
    )
    for status, after_s in seed.transitions:
        await conn.execute(
            "INSERT INTO incident_transitions (tenant_id, incident_id, status, at) "
            "VALUES ($1, $2, $3, $4)",
            tenant_id,
            incident_id,
            status,
            base + timedelta(seconds=after_s),
        )
    for attempt, (kind, status, started) in enumerate(seed.actions):
        await conn.execute(
            """INSERT INTO actions (id, tenant_id, incident_id, action_type, attempt,
                   idempotency_key, status, started_at)
               VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7)""",
            tenant_id,
            incident_id,
            kind,
            attempt,
            f"{incident_id}:{attempt}",
            status,
            first if started else None,
        )
    if seed.operator_resolved:
        await conn.execute(
            "INSERT INTO operator_actions (id, tenant_id, actor, action, target) "
            "VALUES (gen_random_uuid(), $1, 'api-key:dana', 'resolve', $2)",
            tenant_id,
            f"incident:{incident_id}",
        )


@pytest.fixture
async def window(settings: Settings, tenant: TenantCredentials) -> tuple[datetime, datetime]:
    """Store SEEDS for the tenant from the start of the hour before last; return the window."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        for seed in SEEDS:
            await _store(conn, tenant.id, base, seed)
    finally:
        await conn.close()
    return base, base + timedelta(hours=2)


def _query(window: tuple[datetime, datetime], **extra: str) -> dict[str, str]:
    return {"since": window[0].isoformat(), "until": window[1].isoformat(), **extra}


async def test_the_summary_gives_exact_percentiles_and_shares(
    http: httpx.AsyncClient, tenant: TenantCredentials, window: tuple[datetime, datetime]
) -> None:
    params = _query(window, group_by="workflow", bucket="hour")
    response = await http.get("/api/v1/reports/summary", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    total = body["total"]
    # MTTA over C and D: [60, 300]; MTTR over A, H, B, C: [60, 120, 180, 600].
    assert total == {
        "key": None,
        "opened": 7,
        "resolved_automatically": 2,
        "resolved_automatically_share": pytest.approx(2 / 7),
        "escalated": 2,
        "escalated_share": pytest.approx(2 / 7),
        "killed": 1,
        "mtta_p50_s": pytest.approx(180.0),
        "mtta_p90_s": pytest.approx(276.0),
        "mttr_p50_s": pytest.approx(150.0),
        "mttr_p90_s": pytest.approx(474.0),
        "events_per_incident": pytest.approx(25 / 7),
        "callback_calls": 3,
        "pages_sent": 2,
    }
    billing, shipping = body["groups"]
    assert (billing["key"], billing["opened"], billing["escalated_share"]) == ("billing", 4, 0.5)
    assert billing["resolved_automatically_share"] == 0.25
    assert (billing["mttr_p50_s"], billing["mttr_p90_s"]) == pytest.approx((180.0, 516.0))
    assert (billing["mtta_p50_s"], billing["mtta_p90_s"]) == pytest.approx((180.0, 276.0))
    assert (billing["callback_calls"], billing["pages_sent"]) == (2, 2)
    assert (shipping["key"], shipping["opened"], shipping["killed"]) == ("shipping", 3, 1)
    assert shipping["mtta_p50_s"] is None and shipping["mttr_p50_s"] == pytest.approx(120.0)
    assert shipping["events_per_incident"] == pytest.approx(5 / 3)
    assert [(p["opened"], p["mttr_p50_s"]) for p in body["series"]] == [(6, 180.0), (1, 120.0)]


async def test_an_empty_window_is_zeros_and_nulls(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    response = await http.get("/api/v1/reports/summary", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"]["opened"] == 0 and body["total"]["callback_calls"] == 0
    assert body["total"]["mttr_p50_s"] is None and body["total"]["escalated_share"] is None
    assert (body["groups"], body["series"], body["bucket"]) == ([], [], "day")


async def test_the_summary_is_tenant_scoped_and_validates_its_window(
    http: httpx.AsyncClient, tenant: TenantCredentials, window: tuple[datetime, datetime]
) -> None:
    by_vendor = await http.get(
        "/api/v1/reports/summary",
        headers=tenant.headers,
        params=_query(window, group_by="vendor"),
    )
    assert [(g["key"], g["opened"]) for g in by_vendor.json()["groups"]] == [(None, 7)]
    reversed_window = {"since": window[1].isoformat(), "until": window[0].isoformat()}
    bad = await http.get("/api/v1/reports/summary", headers=tenant.headers, params=reversed_window)
    assert bad.status_code == 422 and "since" in bad.json()["detail"]
    for edge, named in (
        ({"until": "0001-01-02T00:00:00Z"}, "until"),
        ({"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T00:00:00Z"}, "since"),
    ):
        answer = await http.get("/api/v1/reports/summary", headers=tenant.headers, params=edge)
        assert answer.status_code == 422 and named in answer.json()["detail"], answer.text
    unknown = await http.get(
        "/api/v1/reports/summary", headers=tenant.headers, params={"group_by": "severity"}
    )
    assert unknown.status_code == 422 and "group_by" in unknown.json()["detail"]


@pytest.fixture(scope="module")
def api_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m api` reached over a socket, as the CLI reaches it."""
    with served_api(settings, tmp_path_factory.mktemp("report") / "api.log") as served:
        yield served.url


def _awfdrs(
    api_url: str, tenant: TenantCredentials, home: Path, *args: str
) -> subprocess.CompletedProcess[Any]:
    """Run this checkout's `awfdrs` with the tenant's key, away from any config file."""
    command = [sys.executable, "-m", "cli", *args, "--api-url", api_url]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "MPLCONFIGDIR": str(home / "mpl")}
    return subprocess.run(
        [*command, "--api-key", tenant.api_key],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env | {"AWFDRS_CLI_CONFIG": "/nonexistent/cli.json"},
    )


async def test_awfdrs_report_prints_a_table_and_plots_a_png(
    api_url: str, tenant: TenantCredentials, window: tuple[datetime, datetime], tmp_path: Path
) -> None:
    since, until = (moment.isoformat() for moment in window)
    plot = tmp_path / "report.png"
    result = _awfdrs(
        api_url,
        tenant,
        tmp_path,
        "report",
        "--since",
        since,
        "--until",
        until,
        "--group-by",
        "workflow",
        "--bucket",
        "hour",
        "--plot",
        str(plot),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split()[:3] == ["GROUP", "OPENED", "AUTO_RESOLVED"]
    assert lines[2].split() == [
        "(all)", "7", "2", "(29%)", "2", "(29%)", "1", "3m00s", "4m36s", "2m30s", "7m54s",
        "3.6", "3", "2",
    ]  # fmt: skip
    assert lines[3].split()[:2] == ["billing", "4"] and lines[4].split()[:2] == ["shipping", "3"]
    assert plot.read_bytes()[:8] == PNG_MAGIC and plot.stat().st_size > 10_000
