"""Drop-in intakes: PagerDuty Events v2, Alertmanager webhooks, CloudEvents (one pipeline)."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from temporalio.service import RPCError

from api.auth import IngestPrincipal, Principal, principal_for_key
from api.body import UnsupportedMediaType, read_body, read_json_body
from api.deps import SettingsDep, TemporalDep
from api.errors import Conflict, NotFound
from api.intake import Intake, Rejected
from api.routes.responses import problem_responses
from api.services.adapters import (
    AlertmanagerNotification,
    CloudEvent,
    PagerDutyEvent,
    alertmanager_events,
    cloud_event,
    pagerduty_event,
)
from models.schemas.common import NAME_PATTERN
from models.schemas.events import EventIn
from observability import correlation_id_var
from rules.signature import compute_signature, incident_key
from workflows.incident_types import AcknowledgeRequest

router = APIRouter(prefix="/integrations", tags=["integrations"])
log = logging.getLogger("awfdrs.integrations")
WorkflowParam = Annotated[str, Query(pattern=NAME_PATTERN, description="Registered workflow")]
OptionalWorkflow = Annotated[str | None, Query(pattern=NAME_PATTERN)]
CE_BATCH = "application/cloudevents-batch+json"


def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


async def _submit(
    request: Request, principal: Principal, items: list[tuple[EventIn, str]]
) -> list[Any]:
    intake = _intake(request)
    await intake.admit(principal, len(items))
    return await intake.submit(
        principal=principal, items=items, correlation_id=correlation_id_var.get() or ""
    )


def _pd_invalid(errors: list[str], status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
        status_code=status,
    )


@router.post(
    "/pagerduty/enqueue",
    operation_id="pagerdutyEnqueue",
    status_code=202,
    responses={
        400: {"description": "PagerDuty's `invalid event` shape"},
        **problem_responses(401, 403, 404, 429, 503),
    },
)
async def pagerduty(
    request: Request, workflow: WorkflowParam, settings: SettingsDep, temporal: TemporalDep
) -> JSONResponse:
    """PagerDuty Events API v2: `routing_key` is an AWFDRS API key of the tenant."""
    try:
        raw = json.loads(await read_json_body(request, settings.max_body_bytes * 8))
        event = PagerDutyEvent.model_validate(raw)
        if event.event_action == "trigger" and event.payload is None:
            return _pd_invalid(["'payload' is missing or blank"])
        if event.event_action != "trigger" and not event.dedup_key:
            return _pd_invalid(["'dedup_key' is missing or blank"])
    except (ValueError, UnsupportedMediaType) as exc:
        errors = (
            [f"'{'.'.join(str(p) for p in e['loc'])}' {e['msg']}" for e in exc.errors()]
            if isinstance(exc, ValidationError)
            else [str(exc)]
        )
        return _pd_invalid(errors)
    principal = await principal_for_key(request, event.routing_key)
    if event.event_action == "acknowledge":
        assert event.dedup_key is not None
        await _acknowledge(request, temporal, principal, workflow, event.dedup_key)
        return _pd_accepted(event.dedup_key)
    try:
        internal, key, dedup_key = pagerduty_event(event, workflow)
    except ValidationError as exc:
        return _pd_invalid(
            [f"'{'.'.join(str(p) for p in e['loc'])}' {e['msg']}" for e in exc.errors()]
        )
    [outcome] = await _submit(request, principal, [(internal, key)])
    if isinstance(outcome, Rejected):
        raise NotFound(outcome.error)
    return _pd_accepted(dedup_key)


def _pd_accepted(dedup_key: str) -> JSONResponse:
    return JSONResponse(
        {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, status_code=202
    )


async def _acknowledge(
    request: Request, temporal: TemporalDep, principal: Principal, workflow: str, dedup_key: str
) -> None:
    catalog = request.app.state.policies.error_codes
    signature = compute_signature(
        catalog,
        workflow=workflow,
        step=dedup_key,
        error_code="ALERT",
        error_message=None,
        vendor=None,
    )
    handle = temporal.get_workflow_handle(incident_key(str(principal.tenant_id), signature))
    try:
        await handle.signal("acknowledge", AcknowledgeRequest(by="pagerduty"))
    except (RPCError, RuntimeError, OSError) as exc:  # no open alert: PagerDuty drops it too
        log.info("pagerduty acknowledge for %s dropped: %s", dedup_key, exc)


@router.post(
    "/alertmanager",
    operation_id="alertmanagerWebhook",
    responses=problem_responses(401, 403, 404, 413, 415, 422, 429, 503),
)
async def alertmanager(
    request: Request, principal: IngestPrincipal, workflow: WorkflowParam, settings: SettingsDep
) -> dict[str, Any]:
    """Alertmanager webhook (version 4): one event per alert; `resolved` resolves."""
    raw = await read_json_body(request, settings.max_body_bytes * 16)
    try:
        note = AlertmanagerNotification.model_validate_json(raw)
        items = alertmanager_events(note, workflow)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    outcomes = await _submit(request, principal, items)
    rejected = [o for o in outcomes if isinstance(o, Rejected)]
    if rejected:
        raise NotFound(rejected[0].error)
    return {
        "status": "success",
        "alerts": len(items),
        "accepted": sum(getattr(o, "status", 0) == 202 for o in outcomes),
        "duplicates": sum(getattr(o, "status", 0) == 200 for o in outcomes),
    }


@router.post(
    "/cloudevents",
    operation_id="cloudeventsIntake",
    status_code=202,
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422, 429, 503),
)
async def cloudevents(
    request: Request,
    principal: IngestPrincipal,
    settings: SettingsDep,
    workflow: OptionalWorkflow = None,
) -> JSONResponse:
    """CloudEvents 1.0: binary, structured and batch modes; `source` + `id` is the key."""
    events = await _read_cloudevents(request, settings.max_body_bytes * 16)
    try:
        items = [cloud_event(event, workflow) for event in events]
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    outcomes = await _submit(request, principal, items)
    results = []
    for outcome in outcomes:
        if isinstance(outcome, Rejected):
            raise NotFound(outcome.error)
        if outcome.status == 409:
            raise Conflict("a CloudEvent with this source and id was stored with other content")
        results.append(
            {
                "event_id": str(outcome.event_id),
                "status": "accepted" if outcome.status == 202 else "duplicate",
            }
        )
    return JSONResponse({"results": results}, status_code=202)


async def _read_cloudevents(request: Request, limit: int) -> list[CloudEvent]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, limit)
    try:
        if media == CE_BATCH:
            return [CloudEvent.model_validate(item) for item in json.loads(body)]
        if media == "application/cloudevents+json":
            return [CloudEvent.model_validate_json(body)]
        if "ce-id" in request.headers:
            attributes = {k[3:]: v for k, v in request.headers.items() if k.startswith("ce-")}
            data = json.loads(body) if body and media.endswith("json") else None
            return [
                CloudEvent.model_validate({**attributes, "datacontenttype": media, "data": data})
            ]
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    except (ValueError, TypeError) as exc:
        raise RequestValidationError(
            [{"loc": ["body"], "msg": f"not JSON: {exc}", "type": "json_invalid"}]
        ) from None
    raise UnsupportedMediaType(
        f"send application/cloudevents+json, {CE_BATCH}, or binary mode with ce-* headers"
    )
