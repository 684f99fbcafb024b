"""Incident reads (DB projection + live workflow state), timelines and controls."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import Conflict, NotFound, ServiceUnavailable
from clients import workflow_ui_url
from models.event import Event
from models.incident import Action, Decision, Incident, IncidentTransition
from models.schemas.incidents import (
    EventSample,
    IncidentDetail,
    IncidentOut,
    LiveState,
    Timeline,
    TimelineEntry,
)
from workflows.incident_types import TERMINAL_STATUSES, IncidentView

LIVE_TIMEOUT = timedelta(seconds=2)
MAX_BUCKETS = 48
_BUCKETS = text("""
SELECT date_bin(make_interval(secs => :bucket), occurred_at, :origin) AS bucket,
       count(*) AS events,
       (array_agg(id ORDER BY occurred_at, id))[1] AS first_id,
       (array_agg(id ORDER BY occurred_at DESC, id DESC))[1] AS latest_id
FROM events
WHERE tenant_id = :tenant_id AND incident_key = :key
  AND occurred_at BETWEEN :since AND :until
GROUP BY 1 ORDER BY 1
""")


def incident_out(row: Incident, ui_base: str | None, namespace: str) -> IncidentOut:
    """Render a stored incident."""
    return IncidentOut(
        **row.model_dump(), web_ui_url=workflow_ui_url(ui_base, namespace, row.workflow_id)
    )


async def get_incident_or_raise(
    *, session: AsyncSession, tenant_id: uuid.UUID, incident_id: str
) -> Incident:
    """Return the tenant's incident by its id or its workflow id (the latest run's incident).

    Another tenant's incident, or a reference that is neither, answers NotFound.
    """
    try:
        row = await session.get(Incident, uuid.UUID(incident_id))
    except ValueError:  # not a UUID: the workflow id the Web UI and intake show
        query = (
            select(Incident)
            .where(Incident.tenant_id == tenant_id, Incident.workflow_id == incident_id)
            .order_by(col(Incident.created_at).desc())
            .limit(1)
        )
        row = (await session.exec(query)).first()
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"incident {incident_id} not found")
    return row


async def live_state(temporal: Client, row: Incident) -> tuple[LiveState | None, str | None]:
    """Query the running workflow; (None, reason) when closed or Temporal is unreachable."""
    if row.status in TERMINAL_STATUSES:
        return None, None
    handle = temporal.get_workflow_handle(row.workflow_id, first_execution_run_id=row.run_id)
    try:
        view: IncidentView = await asyncio.wait_for(
            handle.query("status", result_type=IncidentView, rpc_timeout=LIVE_TIMEOUT), 3
        )
    except (RPCError, RuntimeError, OSError, TimeoutError) as exc:
        return None, f"live state unavailable: {type(exc).__name__}"
    return LiveState(**{name: getattr(view, name) for name in LiveState.model_fields}), None


async def incident_detail(
    *, temporal: Client, row: Incident, ui_base: str | None, namespace: str
) -> IncidentDetail:
    """Merge the stored incident with its live state."""
    live, error = await live_state(temporal, row)
    return IncidentDetail(
        **incident_out(row, ui_base, namespace).model_dump(),
        live=live,
        live_state_available=live is not None or row.status in TERMINAL_STATUSES,
        live_state_error=error,
    )


async def send_control(
    *, temporal: Client, row: Incident, signal: str, argument: dict[str, Any] | None
) -> None:
    """Signal the incident's workflow; 409 when the incident is closed."""
    if row.status in TERMINAL_STATUSES:
        raise Conflict(f"incident {row.id} is {row.status}; controls apply only to live incidents")
    handle = temporal.get_workflow_handle(row.workflow_id, first_execution_run_id=row.run_id)
    try:
        if argument is None:
            await handle.signal(signal, rpc_timeout=LIVE_TIMEOUT)
        else:
            await handle.signal(signal, argument, rpc_timeout=LIVE_TIMEOUT)
    except RPCError as exc:
        if "completed" in str(exc).lower() or "not found" in str(exc).lower():
            raise Conflict(f"incident {row.id} has already ended") from None
        raise ServiceUnavailable(
            "temporal is unavailable; the control was not delivered", dependency="temporal"
        ) from None
    except (RuntimeError, OSError):
        raise ServiceUnavailable(
            "temporal is unavailable; the control was not delivered", dependency="temporal"
        ) from None


def bucket_seconds(row: Incident) -> float:
    """Pick a bucket width giving at most MAX_BUCKETS event buckets."""
    span = ((row.closed_at or row.last_seen_at) - row.first_seen_at).total_seconds()
    for width in (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86_400):
        if span / width <= MAX_BUCKETS:
            return float(width)
    return max(86_400.0, span / MAX_BUCKETS)


async def event_entries(session: AsyncSession, row: Incident, width: float) -> list[TimelineEntry]:
    """Summarise the incident's events per time bucket, with the first and latest samples."""
    params = {
        "bucket": width,
        "origin": row.first_seen_at,
        "tenant_id": row.tenant_id,
        "key": row.workflow_id,
        "since": row.first_seen_at,
        "until": row.closed_at or row.last_seen_at,
    }
    connection = await session.connection()
    buckets = (await connection.execute(_BUCKETS, params)).mappings().all()
    ids = {b["first_id"] for b in buckets} | {b["latest_id"] for b in buckets}
    samples = {e.id: e for e in (await session.exec(select(Event).where(col(Event.id).in_(ids))))}
    entries = []
    for bucket in buckets:
        first, latest = samples[bucket["first_id"]], samples[bucket["latest_id"]]
        entries.append(
            TimelineEntry(
                at=bucket["bucket"],
                kind="events",
                summary=f"{bucket['events']} event(s)",
                cause="client events",
                details={
                    "count": bucket["events"],
                    "samples": [
                        EventSample(
                            id=e.id,
                            event_type=e.event_type,
                            occurred_at=e.occurred_at,
                            error_code=e.error_code,
                            error_message=e.error_message,
                        ).model_dump(mode="json")
                        for e in ([first] if first.id == latest.id else [first, latest])
                    ],
                },
            )
        )
    return entries


async def audit_entries(session: AsyncSession, row: Incident) -> list[TimelineEntry]:
    """Decisions, actions and state changes of the incident as timeline entries."""
    entries: list[TimelineEntry] = []
    for d in await session.exec(select(Decision).where(Decision.incident_id == row.id)):
        entries.append(
            TimelineEntry(
                at=d.created_at,
                kind="decision",
                summary=f"{d.decision_type}: {d.reasoning}"[:500],
                cause=d.ai_model,
                details={"confidence": d.confidence, "decision_id": str(d.id)},
            )
        )
    for a in await session.exec(select(Action).where(Action.incident_id == row.id)):
        entries.append(
            TimelineEntry(
                at=a.started_at or a.created_at,
                kind="action",
                summary=f"{a.action_type} #{a.attempt}: {a.status}",
                cause="retry policy (plan decision)"
                if a.action_type == "retry"
                else "escalation policy",
                details={"action_id": str(a.id), "result": a.result},
            )
        )
    transitions = await session.exec(
        select(IncidentTransition).where(IncidentTransition.incident_id == row.id)
    )
    for t in transitions:
        entries.append(
            TimelineEntry(
                at=t.at, kind="state", summary=f"status → {t.status}", cause=t.reason or "workflow"
            )
        )
    return entries


async def timeline(
    *, session: AsyncSession, row: Incident, ui_base: str | None, namespace: str
) -> Timeline:
    """Build the bounded, time-ordered story of one incident."""
    width = bucket_seconds(row)
    entries = await event_entries(session, row, width) + await audit_entries(session, row)
    entries.sort(key=lambda entry: entry.at)
    return Timeline(
        incident_id=row.id,
        web_ui_url=workflow_ui_url(ui_base, namespace, row.workflow_id),
        event_count=row.event_count,
        bucket_seconds=width,
        entries=entries,
    )
