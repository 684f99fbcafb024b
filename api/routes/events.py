"""`/events`: intake (single and batch) and the tenant's event log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import col, select
from starlette.types import Scope

from api.auth import IngestPrincipal, OperatorPrincipal, authenticate
from api.body import read_json_body
from api.deps import IntakeDep, SessionDep, SettingsDep
from api.errors import Conflict, NotFound
from api.intake import Rejected, parse_event
from api.intake_answers import BatchOutcome, accepted_json, batch_result_json
from api.openapi import json_request_body
from api.pagination import CursorQuery, LimitQuery, fetch_page
from api.routes.direct_route import FrontRoute, direct_route, plain_json_request, plain_json_scope
from api.routes.responses import problem_responses
from api.validation import InvalidItem, invalid, invalid_item, json_body
from models.event import Event
from models.schemas.common import Page, field_errors
from models.schemas.events import (
    BatchResult,
    ErrorOut,
    EventAccepted,
    EventBatchIn,
    EventIn,
    EventOut,
)
from models.schemas.storable import CHECKED, StorableText, UtcDateTime, all_storable
from observability import correlation_id_var
from vocabulary import EventType

router = APIRouter(tags=["events"])
BATCH_BODY_FACTOR = 16
IdempotencyHeader = Annotated[
    StorableText | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
]


async def ingest_event(
    *,
    request: Request,
    principal: IngestPrincipal,
    settings: SettingsDep,
    intake: IntakeDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """Store one event and queue it for its incident; 202 only after commit."""
    body = json_body(await read_json_body(request, settings.max_body_bytes))
    try:
        item = parse_event(body, idempotency_key, context=CHECKED if all_storable(body) else None)
    except ValidationError as exc:
        raise invalid(field_errors(exc)) from None
    [outcome] = await intake.ingest(
        principal, [item], correlation_id=correlation_id_var.get() or ""
    )
    if isinstance(outcome, Rejected):
        raise NotFound(outcome.error)
    if outcome.status == 409:
        raise Conflict(
            f"idempotency key {item[1]!r} was already used with a different body",
            event_id=str(outcome.event_id),
        )
    headers = {"Idempotent-Replayed": "true"} if outcome.status == 200 else None
    return Response(accepted_json(outcome), outcome.status, headers, media_type="application/json")


async def _ingest_directly(request: Request) -> Response:
    """`ingest_event` with its arguments built by hand (see api/routes/direct_route.py)."""
    state = request.app.state
    principal = await authenticate(request)
    return await ingest_event(
        request=request, principal=principal, settings=state.settings, intake=state.intake
    )


def _plain(request: Request) -> bool:
    return plain_json_request(request, without=(b"idempotency-key",))


def _plain_scope(scope: Scope) -> bool:
    return plain_json_scope(scope, without=(b"idempotency-key",))


router.add_api_route(
    "/events",
    ingest_event,
    methods=["POST"],
    route_class_override=direct_route(_ingest_directly, _plain),
    operation_id="ingestEvent",
    status_code=202,
    response_model=EventAccepted,
    openapi_extra=json_request_body(EventIn),
    responses={
        200: {"model": EventAccepted, "description": "Same key and body seen before: the original"},
        **problem_responses(401, 403, 404, 409, 413, 415, 422, 429, 503),
    },
)


@router.post(
    "/events/batch",
    operation_id="ingestEventBatch",
    response_model=BatchResult,
    openapi_extra=json_request_body(EventBatchIn),
    responses=problem_responses(401, 403, 413, 415, 422, 429, 503),
)
async def ingest_batch(
    request: Request, principal: IngestPrincipal, settings: SettingsDep, intake: IntakeDep
) -> Response:
    """Store up to 1,000 events; each item succeeds or fails on its own, in order."""
    body = json_body(await read_json_body(request, settings.max_body_bytes * BATCH_BODY_FACTOR))
    # One walk over the whole body instead of one per item and nested model (the common case).
    context = CHECKED if all_storable(body) else None
    try:
        batch = EventBatchIn.model_validate(body, context=context)
    except ValidationError as exc:
        raise invalid(field_errors(exc)) from None
    parsed = [_parse_item(index, item, context) for index, item in enumerate(batch.events)]
    valid = [item for item in parsed if not isinstance(item, InvalidItem)]
    stored = iter(
        await intake.ingest(principal, valid, correlation_id=correlation_id_var.get() or "")
    )
    outcomes: list[BatchOutcome] = [
        item if isinstance(item, InvalidItem) else next(stored) for item in parsed
    ]
    # Encoded here rather than returned: FastAPI would validate the 1,000 results again.
    return Response(batch_result_json(outcomes), media_type="application/json")


async def _ingest_batch_directly(request: Request) -> Response:
    """`ingest_batch` with its arguments built by hand (see api/intake_route.py)."""
    state = request.app.state
    principal = await authenticate(request)
    return await ingest_batch(request, principal, state.settings, state.intake)


def front_routes(prefix: str) -> tuple[FrontRoute, ...]:
    """The intake routes api/intake_route.py serves in front of FastAPI's stack and router."""
    return (
        FrontRoute(f"{prefix}/events", ingest_event, _ingest_directly, _plain_scope),
        FrontRoute(
            f"{prefix}/events/batch", ingest_batch, _ingest_batch_directly, plain_json_scope
        ),
    )


def _parse_item(
    index: int, raw_item: object, context: dict[str, bool] | None
) -> tuple[EventIn, str] | InvalidItem:
    try:
        return parse_event(raw_item, None, context=context)
    except ValidationError as exc:
        return invalid_item(exc, prefix=("events", index))


def _event_out(row: Event) -> EventOut:
    has_error = row.error_code or row.error_message or row.http_status
    return EventOut(
        **row.model_dump(
            exclude={"tenant_id", "body_sha256", "error_code", "error_message", "http_status"}
        ),
        error=ErrorOut(code=row.error_code, message=row.error_message, http_status=row.http_status)
        if has_error
        else None,
    )


@router.get(
    "/events",
    operation_id="listEvents",
    response_model=Page[EventOut],
    responses=problem_responses(401, 403, 422),
)
async def list_events(
    *,
    principal: OperatorPrincipal,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    event_type: EventType | None = None,
    error_code: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[UtcDateTime | None, Query(description="occurred_at ≥ since")] = None,
    until: Annotated[UtcDateTime | None, Query(description="occurred_at < until")] = None,
) -> Page[EventOut]:
    """List the tenant's events, newest first, with filters."""
    query = select(Event).where(Event.tenant_id == principal.tenant_id)
    if workflow is not None:
        query = query.where(Event.workflow == workflow)
    if event_type is not None:
        query = query.where(Event.event_type == event_type)
    if error_code is not None:
        query = query.where(Event.error_code == error_code)
    if since is not None:
        query = query.where(col(Event.occurred_at) >= since)
    if until is not None:
        query = query.where(col(Event.occurred_at) < until)
    rows, following = await fetch_page(
        session, query, model=Event, at="occurred_at", limit=limit, cursor=cursor
    )
    return Page(items=[_event_out(r) for r in rows], next_cursor=following)


@router.get(
    "/events/{event_id}",
    operation_id="getEvent",
    response_model=EventOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_event(
    event_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep
) -> EventOut:
    """Return one of the tenant's events."""
    row = await session.get(Event, event_id)
    if row is None or row.tenant_id != principal.tenant_id:
        raise NotFound(f"event {event_id} not found")
    return _event_out(row)
