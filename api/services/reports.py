"""The summary report: volumes, shares, MTTA and MTTR percentiles, computed in PostgreSQL.

Scope: the tenant's incidents first seen in [since, until). Definitions (README "Reports"):
- resolved automatically: status `resolved`, never `escalated`, and no operator or responder
  system sent `resolve`;
- escalated: at least one transition to `escalated`;
- MTTA: first `escalated` transition → first `acknowledged` transition after it;
- MTTR: `first_seen_at` → `closed_at` of incidents whose status is `resolved`;
- callback calls: `retry` actions that started; pages sent: `escalate` actions that succeeded.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from models.schemas.reports import Bucket, GroupBy, ReportRow, ReportSummary, SeriesPoint

# Fixed SQL expressions chosen by a validated enum: never caller text.
GROUP_COLUMNS: dict[GroupBy | None, str] = {
    "workflow": "i.source_workflow",
    "vendor": "i.vendor",
    "error_code": "i.error_code",
    None: "NULL::text",
}

# Per incident in scope, indexed lookups (transitions, actions, audit rows by incident):
# the cost grows with the incidents in the window, whatever the planner thinks of row counts.
_SCOPED = """
facts AS (
    SELECT i.id, i.status, i.first_seen_at, i.event_count, {group} AS key,
           e.escalated_at IS NOT NULL AS was_escalated,
           EXTRACT(EPOCH FROM k.acknowledged_at - e.escalated_at) AS tta_s,
           CASE WHEN i.status = 'resolved'
                THEN EXTRACT(EPOCH FROM i.closed_at - i.first_seen_at) END AS ttr_s,
           i.status = 'resolved' AND e.escalated_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM operator_actions o
                               WHERE o.tenant_id = i.tenant_id AND o.action = 'resolve'
                                 AND o.target = 'incident:' || i.id)
               AND NOT EXISTS (SELECT 1 FROM responder_receipts r
                               WHERE r.tenant_id = i.tenant_id AND r.incident_id = i.id
                                 AND r.signal = 'resolve') AS auto_resolved,
           c.calls, c.pages
    FROM incidents i
    LEFT JOIN LATERAL (
        SELECT min(t.at) AS escalated_at FROM incident_transitions t
        WHERE t.tenant_id = i.tenant_id AND t.incident_id = i.id AND t.status = 'escalated'
    ) e ON true
    LEFT JOIN LATERAL (
        SELECT min(t.at) AS acknowledged_at FROM incident_transitions t
        WHERE t.tenant_id = i.tenant_id AND t.incident_id = i.id AND t.status = 'acknowledged'
          AND t.at >= e.escalated_at
    ) k ON true
    LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE a.action_type = 'retry' AND a.started_at IS NOT NULL)
                   AS calls,
               count(*) FILTER (WHERE a.action_type = 'escalate' AND a.status = 'succeeded')
                   AS pages
        FROM actions a WHERE a.tenant_id = i.tenant_id AND a.incident_id = i.id
    ) c ON true
    WHERE i.tenant_id = :tenant_id AND i.first_seen_at >= :since AND i.first_seen_at < :until
)"""

_SUMMARY = """
WITH {scoped}
SELECT GROUPING(key) = 1 AS is_total, key,
       count(*) AS opened,
       count(*) FILTER (WHERE auto_resolved) AS resolved_automatically,
       count(*) FILTER (WHERE auto_resolved)::float8 / nullif(count(*), 0)
           AS resolved_automatically_share,
       count(*) FILTER (WHERE was_escalated) AS escalated,
       count(*) FILTER (WHERE was_escalated)::float8 / nullif(count(*), 0) AS escalated_share,
       count(*) FILTER (WHERE status = 'killed') AS killed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY tta_s) AS mtta_p50_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY tta_s) AS mtta_p90_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ttr_s) AS mttr_p50_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY ttr_s) AS mttr_p90_s,
       avg(event_count)::float8 AS events_per_incident,
       coalesce(sum(calls), 0)::bigint AS callback_calls,
       coalesce(sum(pages), 0)::bigint AS pages_sent
FROM facts
GROUP BY GROUPING SETS ((key), ())
ORDER BY is_total DESC, opened DESC, key
"""

_SERIES = """
WITH {scoped}
SELECT date_trunc(:bucket, first_seen_at, 'UTC') AS bucket_start, count(*) AS opened,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ttr_s) AS mttr_p50_s
FROM facts
GROUP BY 1
ORDER BY 1
"""

EMPTY_ROW: dict[str, Any] = {
    "key": None,
    "opened": 0,
    "resolved_automatically": 0,
    "resolved_automatically_share": None,
    "escalated": 0,
    "escalated_share": None,
    "killed": 0,
    "mtta_p50_s": None,
    "mtta_p90_s": None,
    "mttr_p50_s": None,
    "mttr_p90_s": None,
    "events_per_incident": None,
    "callback_calls": 0,
    "pages_sent": 0,
}


async def summary(
    *,
    engine: AsyncEngine,
    tenant_id: uuid.UUID,
    since: datetime,
    until: datetime,
    group_by: GroupBy | None,
    bucket: Bucket = "day",
) -> ReportSummary:
    """Compute the summary of the tenant's incidents first seen in [since, until)."""
    scoped = _SCOPED.format(group=GROUP_COLUMNS[group_by])
    params = {"tenant_id": tenant_id, "since": since, "until": until}
    async with engine.connect() as conn:
        rows = (await conn.execute(text(_SUMMARY.format(scoped=scoped)), params)).mappings().all()
        series = await conn.execute(
            text(_SERIES.format(scoped=scoped)), {**params, "bucket": bucket}
        )
        points = [SeriesPoint(**point) for point in series.mappings().all()]
    total = next((row for row in rows if row["is_total"]), None)
    groups = [ReportRow(**_row(row)) for row in rows if not row["is_total"]]
    return ReportSummary(
        since=since,
        until=until,
        group_by=group_by,
        bucket=bucket,
        total=ReportRow(**(_row(total) if total else EMPTY_ROW)),
        groups=groups if group_by else [],
        series=points,
    )


def _row(row: Any) -> dict[str, Any]:
    """A result row as ReportRow fields (the total has no key)."""
    values = {name: row[name] for name in EMPTY_ROW}
    values["key"] = None if row["is_total"] else row["key"]
    return values
