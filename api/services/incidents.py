"""Incident reads: the stored projection, the live workflow state, and timelines."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import RowMapping, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import NotFound
from api.services.responder_webhooks import responder_entries
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
from vocabulary import (
    TERMINAL_STATUSES,
    VENDOR_WORKFLOW_PREFIX,
    ActionType,
    IncidentStatus,
    Severity,
)
from workflows.incident_workflow import IncidentWorkflow
from workflows.vendor_incident_workflow import VendorIncidentWorkflow

LIVE_TIMEOUT = timedelta(seconds=2)
MAX_BUCKETS = 48
ACTION_CAUSES: dict[str, str] = {ActionType.RETRY: "retry policy (plan decision)"}
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


@dataclass(frozen=True)
class IncidentFilters:
    """What an incident listing is narrowed to; None matches anything."""

    status: IncidentStatus | None = None
    severity: Severity | None = None
    workflow: str | None = None
    vendor: str | None = None
    error_code: str | None = None
    since: datetime | None = None  # last activity at or after
    until: datetime | None = None  # last activity before


def incidents_query(tenant_id: uuid.UUID, filters: IncidentFilters) -> SelectOfScalar[Incident]:
    """Select the tenant's incidents matching `filters`."""
    query = select(Incident).where(Incident.tenant_id == tenant_id)
    for column, value in (
        (Incident.status, filters.status),
        (Incident.severity, filters.severity),
        (Incident.source_workflow, filters.workflow),
        (Incident.vendor, filters.vendor),
        (Incident.error_code, filters.error_code),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(col(Incident.last_seen_at) >= filters.since)
    if filters.until is not None:
        query = query.where(col(Incident.last_seen_at) < filters.until)
    return query


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
    if row.workflow_id.startswith(VENDOR_WORKFLOW_PREFIX):
        return await _vendor_live_state(temporal, row)
    handle = temporal.get_workflow_handle_for(
        IncidentWorkflow.run, row.workflow_id, first_execution_run_id=row.run_id
    )
    try:
        view = await asyncio.wait_for(
            handle.query(IncidentWorkflow.status, rpc_timeout=LIVE_TIMEOUT), 3
        )
    except (RPCError, RuntimeError, OSError, TimeoutError) as exc:
        return None, f"live state unavailable: {type(exc).__name__}"
    return LiveState.model_validate(view, from_attributes=True), None


async def _vendor_live_state(
    temporal: Client, row: Incident
) -> tuple[LiveState | None, str | None]:
    """A vendor incident's live state: its probes as attempts, its children as events."""
    # Its row is written before its run starts, so the row cannot name the run: ask the
    # workflow id's current run.
    handle = temporal.get_workflow_handle_for(VendorIncidentWorkflow.run, row.workflow_id)
    try:
        state = await asyncio.wait_for(
            handle.query(VendorIncidentWorkflow.status, rpc_timeout=LIVE_TIMEOUT), 3
        )
    except (RPCError, RuntimeError, OSError, TimeoutError) as exc:
        return None, f"live state unavailable: {type(exc).__name__}"
    probing = f"probe through incident {state.probing}" if state.probing else None
    return LiveState(
        status=state.status,
        attempts=state.probes,
        event_count=len(state.children),
        paused=False,
        next_action=probing,
        next_action_at=None,
        latest_decision=None,
        latest_action=state.last_probe or None,
        gate_reason=None,
        escalation_level=1 if state.paged else 0,
        acknowledged_by=None,
        runs=state.runs,
    ), None


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
    return [
        _bucket_entry(
            bucket, first=samples[bucket["first_id"]], latest=samples[bucket["latest_id"]]
        )
        for bucket in buckets
    ]


def _bucket_entry(bucket: RowMapping, *, first: Event, latest: Event) -> TimelineEntry:
    shown = [first] if first.id == latest.id else [first, latest]
    return TimelineEntry(
        at=bucket["bucket"],
        kind="events",
        summary=f"{bucket['events']} event(s)",
        cause="client events",
        details={
            "count": bucket["events"],
            "samples": [
                EventSample.model_validate(e, from_attributes=True).model_dump(mode="json")
                for e in shown
            ],
        },
    )


async def decision_entries(session: AsyncSession, row: Incident) -> list[TimelineEntry]:
    """The incident's decisions, each caused by its rule set or mock model."""
    decisions = await session.exec(select(Decision).where(Decision.incident_id == row.id))
    return [
        TimelineEntry(
            at=d.created_at,
            kind="decision",
            summary=f"{d.decision_type}: {d.reasoning}"[:500],
            cause=d.ai_model,
            details={"confidence": d.confidence, "decision_id": str(d.id)},
        )
        for d in decisions
    ]


async def action_entries(session: AsyncSession, row: Incident) -> list[TimelineEntry]:
    """The incident's callback attempts and escalation pages."""
    actions = await session.exec(select(Action).where(Action.incident_id == row.id))
    return [
        TimelineEntry(
            at=a.started_at or a.created_at,
            kind="action",
            summary=f"{a.action_type} #{a.attempt}: {a.status}",
            cause=ACTION_CAUSES.get(a.action_type, "escalation policy"),
            details={"action_id": str(a.id), "result": a.result},
        )
        for a in actions
    ]


async def state_entries(session: AsyncSession, row: Incident) -> list[TimelineEntry]:
    """The incident's status changes, each with the reason the workflow recorded.

    A wait the safety gate asked for reads "waiting: stripe circuit open, 28 s"; an operator's
    pause or resume names who did it ("paused by alice: deploying").
    """
    transitions = await session.exec(
        select(IncidentTransition).where(IncidentTransition.incident_id == row.id)
    )
    return [
        TimelineEntry(
            at=t.at, kind="state", summary=f"status → {t.status}", cause=t.reason or "workflow"
        )
        for t in transitions
    ]


async def timeline(
    *, session: AsyncSession, row: Incident, ui_base: str | None, namespace: str
) -> Timeline:
    """Build the bounded, time-ordered story of one incident."""
    width = bucket_seconds(row)
    entries = [
        *await event_entries(session, row, width),
        *await decision_entries(session, row),
        *await action_entries(session, row),
        *await state_entries(session, row),
        *await responder_entries(session, row),
    ]
    entries.sort(key=lambda entry: entry.at)
    return Timeline(
        incident_id=row.id,
        web_ui_url=workflow_ui_url(ui_base, namespace, row.workflow_id),
        event_count=row.event_count,
        bucket_seconds=width,
        entries=entries,
    )
