"""Drop-in intakes: PagerDuty Events v2, Alertmanager webhooks, CloudEvents (one pipeline)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.auth import IngestPrincipal, principal_for_key
from api.body import UnsupportedMediaType, read_body, read_json_body
from api.deps import (
    EngineDep,
    IntakeDep,
    PolicyDep,
    PrincipalCacheDep,
    SettingsDep,
    TemporalDep,
)
from api.errors import Conflict, Forbidden, NotFound
from api.intake import Intake, ItemResult, Rejected
from api.openapi import COMPONENTS, json_request_body
from api.principals import Principal
from api.routes.responses import problem_responses
from api.services.adapters import (
    PAGERDUTY_SOURCES,
    AlertmanagerNotification,
    CloudEvent,
    Converted,
    PagerDutyEvent,
    alertmanager_events,
    binary_mode_source,
    cloud_event_item,
    pagerduty_event,
)
from api.services.controls import acknowledge_alert
from api.validation import InvalidItem, InvalidJson, invalid, json_body, loads_json
from models.schemas.common import NAME_PATTERN, FieldError, field_errors
from models.schemas.events import EventIn
from models.schemas.integrations import (
    AlertmanagerResult,
    CloudEventsResult,
    PagerDutyAccepted,
    PagerDutyInvalid,
)
from models.schemas.storable import UNSTORABLE_TYPES
from observability import correlation_id_var

router = APIRouter(prefix="/integrations", tags=["integrations"])
log = logging.getLogger("awfdrs.integrations")
WorkflowParam = Annotated[str, Query(pattern=NAME_PATTERN, description="Registered workflow")]
OptionalWorkflow = Annotated[str | None, Query(pattern=NAME_PATTERN)]
CE_STRUCTURED = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


def _cloudevents_bodies() -> dict[str, Any]:
    """Structured and batch modes; binary mode (`ce-*` headers) is described in words."""
    extra = json_request_body(CloudEvent, CE_STRUCTURED)
    content = extra["requestBody"]["content"]
    content[CE_BATCH] = {"schema": {"type": "array", "items": {"$ref": COMPONENTS + "CloudEvent"}}}
    return extra


async def _submit(
    intake: Intake, principal: Principal, items: list[tuple[EventIn, str]]
) -> list[ItemResult]:
    return await intake.ingest(principal, items, correlation_id=correlation_id_var.get() or "")


def _pd_invalid(errors: list[str], status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
        status_code=status,
    )


def _pd_refused(errors: list[FieldError]) -> JSONResponse:
    """PagerDuty's own 400 for a malformed event; the 422 problem for a value never storable."""
    if any(error.type in UNSTORABLE_TYPES for error in errors):
        raise invalid(errors)
    return _pd_invalid([f"'{'.'.join(error.loc)}' {error.msg}" for error in errors])


async def _read_pagerduty(request: Request, limit: int) -> PagerDutyEvent | JSONResponse:
    try:
        event = PagerDutyEvent.model_validate(loads_json(await read_json_body(request, limit)))
    except InvalidJson as exc:
        return _pd_refused([FieldError(loc=["body"], msg=str(exc), type=exc.kind)])
    except UnsupportedMediaType as exc:
        return _pd_invalid([str(exc)])
    except ValidationError as exc:
        return _pd_refused(field_errors(exc))
    if event.event_action == "trigger" and event.payload is None:
        return _pd_invalid(["'payload' is missing or blank"])
    if event.event_action != "trigger" and not event.dedup_key:
        return _pd_invalid(["'dedup_key' is missing or blank"])
    return event


@router.post(
    "/pagerduty/enqueue",
    operation_id="pagerdutyEnqueue",
    status_code=202,
    openapi_extra=json_request_body(PagerDutyEvent),
    responses={
        202: {"description": "Stored (or acknowledged)", "model": PagerDutyAccepted},
        400: {"description": "PagerDuty's `invalid event` shape", "model": PagerDutyInvalid},
        **problem_responses(401, 403, 404, 422, 429, 503),
    },
)
async def pagerduty(
    *,
    request: Request,
    workflow: WorkflowParam,
    settings: SettingsDep,
    temporal: TemporalDep,
    intake: IntakeDep,
    policies: PolicyDep,
    keys: PrincipalCacheDep,
    engine: EngineDep,
) -> JSONResponse:
    """PagerDuty Events API v2: `routing_key` is an AWFDRS API key of the tenant."""
    event = await _read_pagerduty(request, settings.max_body_bytes * 8)
    if isinstance(event, JSONResponse):
        return event
    principal = await principal_for_key(event.routing_key, cache=keys, engine=engine)
    if event.event_action != "trigger" and principal.scope != "operator":
        raise Forbidden("acknowledge and resolve stop paging: they need an operator key")
    if event.event_action == "acknowledge":
        assert event.dedup_key is not None
        # Stores nothing, but is an intake all the same: it counts against the tenant's rate.
        await intake.admit(principal, 1)
        await acknowledge_alert(
            temporal=temporal,
            catalog=policies.error_codes,
            tenant_id=principal.tenant_id,
            workflow=workflow,
            dedup_key=event.dedup_key,
        )
        return _pd_accepted(event.dedup_key)
    return await _pd_enqueue(event, workflow=workflow, intake=intake, principal=principal)


async def _pd_enqueue(
    event: PagerDutyEvent, *, workflow: str, intake: Intake, principal: Principal
) -> JSONResponse:
    """Store a trigger (a failure) or a resolve (a success) like any other event."""
    try:
        internal, key, dedup_key = pagerduty_event(event, workflow)
    except ValidationError as exc:
        return _pd_refused(field_errors(exc, relocate=PAGERDUTY_SOURCES))
    [outcome] = await _submit(intake, principal, [(internal, key)])
    if isinstance(outcome, Rejected):
        raise NotFound(outcome.error)
    return _pd_accepted(dedup_key)


def _pd_accepted(dedup_key: str) -> JSONResponse:
    return JSONResponse(
        {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, status_code=202
    )


def _valid_items(converted: list[Converted]) -> list[tuple[EventIn, str]]:
    """The items to store; the 422 listing every problem when no item is valid."""
    valid = [item for item in converted if not isinstance(item, InvalidItem)]
    refused = [item for item in converted if isinstance(item, InvalidItem)]
    if refused and not valid:
        raise invalid([error for item in refused for error in item.errors])
    return valid


@router.post(
    "/alertmanager",
    operation_id="alertmanagerWebhook",
    openapi_extra=json_request_body(AlertmanagerNotification),
    response_model=None,  # the dict is answered as built; its shape is documented below
    responses={
        200: {"description": "Stored, all or in part", "model": AlertmanagerResult},
        **problem_responses(401, 403, 404, 413, 415, 422, 429, 503),
    },
)
async def alertmanager(
    *,
    request: Request,
    principal: IngestPrincipal,
    workflow: WorkflowParam,
    settings: SettingsDep,
    intake: IntakeDep,
) -> dict[str, Any]:
    """Alertmanager webhook (version 4): one event per alert; `resolved` resolves."""
    body = json_body(await read_json_body(request, settings.max_body_bytes * 16))
    try:
        note = AlertmanagerNotification.model_validate(body)
    except ValidationError as exc:
        raise invalid(field_errors(exc)) from None
    converted = alertmanager_events(note, workflow)
    outcomes = await _submit(intake, principal, _valid_items(converted))
    rejected = [o for o in outcomes if isinstance(o, Rejected)]
    if rejected:
        raise NotFound(rejected[0].error)
    result: dict[str, Any] = {
        "status": "success",
        "alerts": len(converted),
        "accepted": sum(getattr(o, "status", 0) == 202 for o in outcomes),
        "duplicates": sum(getattr(o, "status", 0) == 200 for o in outcomes),
    }
    refused = [item for item in converted if isinstance(item, InvalidItem)]
    if refused:
        # Alertmanager does not resend on 4xx: the valid alerts are stored, the rest reported.
        errors = [error.model_dump() for item in refused for error in item.errors]
        result.update(status="partial", rejected=len(refused), errors=errors)
    return result


@router.post(
    "/cloudevents",
    operation_id="cloudeventsIntake",
    status_code=202,
    openapi_extra=_cloudevents_bodies(),
    responses={
        202: {"description": "Each event's outcome", "model": CloudEventsResult},
        **problem_responses(401, 403, 404, 409, 413, 415, 422, 429, 503),
    },
)
async def cloudevents(
    *,
    request: Request,
    principal: IngestPrincipal,
    settings: SettingsDep,
    intake: IntakeDep,
    workflow: OptionalWorkflow = None,
) -> JSONResponse:
    """CloudEvents 1.0: binary, structured and batch modes; `source` + `id` is the key.

    Binary mode: the attributes as `ce-id`, `ce-source`, `ce-type`, `ce-specversion` headers
    and the data as the JSON body.
    """
    converted = await _read_cloudevents(request, settings.max_body_bytes * 16, workflow)
    outcomes = iter(await _submit(intake, principal, _valid_items(converted)))
    results: list[dict[str, Any]] = []
    for item in converted:
        if isinstance(item, InvalidItem):
            results.append({"status": "rejected", "errors": [e.model_dump() for e in item.errors]})
            continue
        outcome = next(outcomes)
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


async def _read_cloudevents(request: Request, limit: int, workflow: str | None) -> list[Converted]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, limit)
    if media == CE_BATCH:
        batch = json_body(body)
        if not isinstance(batch, list):
            raise invalid([FieldError(loc=["body"], msg="must be a JSON array", type="list_type")])
        return [
            cloud_event_item(item, default_workflow=workflow, prefix=(index,))
            for index, item in enumerate(batch)
        ]
    if media == CE_STRUCTURED:
        return [cloud_event_item(json_body(body), default_workflow=workflow)]
    if "ce-id" in request.headers:
        attributes = {k[3:]: v for k, v in request.headers.items() if k.startswith("ce-")}
        data = json_body(body) if body and media.endswith("json") else None
        event = {**attributes, "datacontenttype": media, "data": data}
        return [cloud_event_item(event, default_workflow=workflow, relocate=binary_mode_source)]
    raise UnsupportedMediaType(
        f"send application/cloudevents+json, {CE_BATCH}, or binary mode with ce-* headers"
    )
