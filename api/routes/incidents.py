"""`/incidents`, `/actions`, `/decisions`: what happened, why, and the controls."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse
from sqlmodel import select

from api.auth import OperatorPrincipal
from api.deps import PolicyDep, SessionDep, SettingsDep, TemporalDep
from api.errors import NotFound
from api.pagination import CursorQuery, LimitQuery, fetch_page
from api.routes.responses import problem_responses
from api.services import incidents as service
from api.services.controls import send_control
from api.services.grouping import annotate_timeline, explain_incident, grouping_out
from models.incident import Action, Decision, Incident
from models.schemas.common import Page
from models.schemas.incidents import (
    ActionOut,
    Control,
    ControlAccepted,
    ControlBody,
    DecisionOut,
    IncidentDetail,
    IncidentOut,
    Timeline,
)
from models.schemas.storable import UtcDateTime
from vocabulary import IncidentStatus, Severity

IncidentRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=300,
        description="The incident's id (UUID) or its workflow id (`incident:<tenant>:<signature>`)",
        examples=["incident:8a1c…:3f2e…"],
    ),
]
router = APIRouter(tags=["incidents"])
ERRORS = problem_responses(401, 403, 404, 422)
Name = Annotated[str | None, Query(max_length=200)]


@router.get(
    "/incidents", operation_id="listIncidents", response_model=Page[IncidentOut], responses=ERRORS
)
async def list_incidents(
    *,
    principal: OperatorPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: IncidentStatus | None = None,
    severity: Severity | None = None,
    workflow: Name = None,
    vendor: Name = None,
    error_code: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[UtcDateTime | None, Query(description="last_seen_at ≥ since")] = None,
    until: Annotated[UtcDateTime | None, Query(description="last_seen_at < until")] = None,
) -> Page[IncidentOut]:
    """List the tenant's incidents, most recently active first."""
    filters = service.IncidentFilters(
        status=status,
        severity=severity,
        workflow=workflow,
        vendor=vendor,
        error_code=error_code,
        since=since,
        until=until,
    )
    query = service.incidents_query(principal.tenant_id, filters)
    rows, following = await fetch_page(
        session, query, model=Incident, at="last_seen_at", limit=limit, cursor=cursor
    )
    return Page(
        items=[
            service.incident_out(r, settings.temporal_ui_url, settings.temporal_namespace)
            for r in rows
        ],
        next_cursor=following,
    )


@router.get(
    "/incidents/{incident_id}",
    operation_id="getIncident",
    response_model=IncidentDetail,
    responses=ERRORS,
)
async def get_incident(
    *,
    incident_id: IncidentRef,
    principal: OperatorPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    policies: PolicyDep,
) -> IncidentDetail:
    """The stored incident merged with the live `status` query; never 5xx when Temporal is down."""
    row = await service.get_incident_or_raise(
        session=session, tenant_id=principal.tenant_id, incident_id=incident_id
    )
    detail = await service.incident_detail(
        temporal=temporal,
        row=row,
        ui_base=settings.temporal_ui_url,
        namespace=settings.temporal_namespace,
    )
    if grouping := await explain_incident(session, row, policies.error_codes):
        detail.grouping = grouping_out(grouping, row)
    return detail


@router.get(
    "/incidents/{incident_id}/timeline",
    operation_id="getIncidentTimeline",
    response_model=Timeline,
    responses=ERRORS,
)
async def get_timeline(
    incident_id: IncidentRef,
    principal: OperatorPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    policies: PolicyDep,
) -> Timeline:
    """Events (bucketed, with samples, saying why they joined), decisions, actions and state
    changes, by time."""
    row = await service.get_incident_or_raise(
        session=session, tenant_id=principal.tenant_id, incident_id=incident_id
    )
    story = await service.timeline(
        session=session,
        row=row,
        ui_base=settings.temporal_ui_url,
        namespace=settings.temporal_namespace,
    )
    grouping = await explain_incident(session, row, policies.error_codes)
    return annotate_timeline(story, grouping) if grouping else story


@router.post(
    "/incidents/{incident_id}/{control}",
    operation_id="controlIncident",
    status_code=202,
    response_model=ControlAccepted,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def control(
    *,
    incident_id: IncidentRef,
    control: Control,
    principal: OperatorPrincipal,
    session: SessionDep,
    temporal: TemporalDep,
    body: Annotated[ControlBody | None, Body()] = None,
) -> JSONResponse:
    """Send pause, resume, kill, resolve, acknowledge, approve or reject to the incident."""
    row = await service.get_incident_or_raise(
        session=session, tenant_id=principal.tenant_id, incident_id=incident_id
    )
    await send_control(
        session=session, temporal=temporal, row=row, control=control, body=body, actor=principal
    )
    accepted = ControlAccepted(incident_id=row.id, workflow_id=row.workflow_id, signal=control)
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202)


@router.get(
    "/actions", operation_id="listActions", response_model=Page[ActionOut], responses=ERRORS
)
async def list_actions(
    *,
    principal: OperatorPrincipal,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    incident_id: uuid.UUID | None = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> Page[ActionOut]:
    """List remediation and escalation actions, newest first."""
    query = select(Action).where(Action.tenant_id == principal.tenant_id)
    if incident_id is not None:
        query = query.where(Action.incident_id == incident_id)
    if status is not None:
        query = query.where(Action.status == status)
    rows, following = await fetch_page(
        session, query, model=Action, at="created_at", limit=limit, cursor=cursor
    )
    return Page(items=[ActionOut(**r.model_dump()) for r in rows], next_cursor=following)


@router.get(
    "/actions/{action_id}", operation_id="getAction", response_model=ActionOut, responses=ERRORS
)
async def get_action(
    action_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep
) -> ActionOut:
    """Return one action."""
    row = await session.get(Action, action_id)
    if row is None or row.tenant_id != principal.tenant_id:
        raise NotFound(f"action {action_id} not found")
    return ActionOut(**row.model_dump())


@router.get(
    "/decisions", operation_id="listDecisions", response_model=Page[DecisionOut], responses=ERRORS
)
async def list_decisions(
    *,
    principal: OperatorPrincipal,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    incident_id: uuid.UUID | None = None,
) -> Page[DecisionOut]:
    """List decisions (rules and mock AI), newest first."""
    query = select(Decision).where(Decision.tenant_id == principal.tenant_id)
    if incident_id is not None:
        query = query.where(Decision.incident_id == incident_id)
    rows, following = await fetch_page(
        session, query, model=Decision, at="created_at", limit=limit, cursor=cursor
    )
    return Page(items=[DecisionOut(**r.model_dump()) for r in rows], next_cursor=following)
