"""The noise report: events, incidents and pages per workflow and per vendor since a moment."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from models.base import sql_strings
from models.schemas.noise import NoiseReport, NoiseRow
from vocabulary import FAILURE_TYPES, ActionStatus, ActionType

# One row per (workflow, vendor) with every figure; the report sums them per axis. Events count
# by `received_at`, incidents by when their row was created, pages by when they were sent.
_FIGURES = text(f"""
WITH ev AS (
    SELECT workflow, vendor,
           count(*) FILTER (WHERE event_type IN ({sql_strings(FAILURE_TYPES)})) AS failures,
           count(*) FILTER (WHERE remediation = 'suppressed') AS suppressed,
           count(*) FILTER (WHERE remediation = 'held') AS held,
           count(*) FILTER (WHERE remediation = 'deferred') AS deferred
    FROM events WHERE tenant_id = :tenant_id AND received_at >= :since AND received_at < :until
    GROUP BY workflow, vendor
), inc AS (
    SELECT source_workflow AS workflow, vendor, count(*) AS incidents
    FROM incidents WHERE tenant_id = :tenant_id AND created_at >= :since AND created_at < :until
    GROUP BY source_workflow, vendor
), pages AS (
    SELECT i.source_workflow AS workflow, i.vendor, count(*) AS pages
    FROM actions a JOIN incidents i ON i.id = a.incident_id
    WHERE a.tenant_id = :tenant_id AND a.action_type = '{ActionType.ESCALATE}'
      AND a.status = '{ActionStatus.SUCCEEDED}'
      AND a.created_at >= :since AND a.created_at < :until
    GROUP BY i.source_workflow, i.vendor
)
SELECT workflow, vendor, coalesce(failures, 0) AS failures, coalesce(suppressed, 0) AS suppressed,
       coalesce(held, 0) AS held, coalesce(deferred, 0) AS deferred,
       coalesce(incidents, 0) AS incidents, coalesce(pages, 0) AS pages
FROM ev FULL JOIN inc USING (workflow, vendor) FULL JOIN pages USING (workflow, vendor)
""")
COUNTS = ("failures", "suppressed", "held", "deferred", "incidents", "pages")


async def noise_report(
    *, engine: AsyncEngine, tenant_id: uuid.UUID, since: datetime, until: datetime
) -> NoiseReport:
    """Figures per workflow and per vendor (null: events naming no vendor), busiest first."""
    params = {"tenant_id": tenant_id, "since": since, "until": until}
    async with engine.connect() as conn:
        rows = [dict(row._mapping) for row in await conn.execute(_FIGURES, params)]
    return NoiseReport(
        since=since,
        until=until,
        total=_row(None, rows),
        workflows=_by(rows, "workflow"),
        vendors=_by(rows, "vendor"),
    )


def _by(rows: list[dict[str, Any]], axis: str) -> list[NoiseRow]:
    groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row[axis]].append(row)
    found = [_row(name, members) for name, members in groups.items()]
    return sorted(found, key=lambda r: (-r.failures, r.name or ""))


def _row(name: str | None, rows: Iterable[Mapping[str, Any]]) -> NoiseRow:
    sums = dict.fromkeys(COUNTS, 0)
    for row in rows:
        for count in COUNTS:
            sums[count] += int(row[count])
    incidents = sums["incidents"]
    return NoiseRow(
        name=name,
        **sums,
        events_per_incident=round(sums["failures"] / incidents, 2) if incidents else None,
        pages_per_incident=round(sums["pages"] / incidents, 2) if incidents else None,
    )
