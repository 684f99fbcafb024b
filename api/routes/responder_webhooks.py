"""Two-way responders: PagerDuty Webhooks v3 and Opsgenie webhooks acknowledge or resolve.

The tenant is named in the path and proven by a secret only it holds: PagerDuty signs the raw
body (`X-PagerDuty-Signature`), Opsgenie sends the tenant's token in a custom header
(`X-AWFDRS-Token`). Both are checked before the body is parsed; a failure is a 401 and changes
nothing. Whatever AWFDRS does not act on (another event type, an incident it does not know)
is a 202 saying why: a responder redelivers every non-2xx answer for hours.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from api.body import read_json_body
from api.deps import SecretBoxDep, SessionDep, SettingsDep, TemporalDep
from api.errors import Unauthorized
from api.routes import responder_secrets
from api.routes.responses import problem_responses
from api.services.responder_secrets import active_secrets
from api.services.responder_webhooks import (
    Order,
    Signal,
    carry_out,
    pagerduty_signature_matches,
    token_matches,
)
from api.validation import invalid, json_body
from models.responder_webhook import ResponderSystem
from models.schemas.common import field_errors
from models.schemas.responders import OpsgenieWebhook, PagerDutyWebhook, ResponderAnswer
from observability import tenant_id_var

router = APIRouter(prefix="/integrations", tags=["integrations"])
router.include_router(responder_secrets.router)
ERRORS = problem_responses(401, 413, 415, 422, 503)
SIGNATURE_HEADER = "X-PagerDuty-Signature"
TOKEN_HEADER = "X-AWFDRS-Token"
BODY_FACTOR = 4  # a v3 incident event with its assignees and teams is a few kilobytes
PAGERDUTY_SIGNALS: dict[str, Signal] = {
    "incident.acknowledged": "acknowledge",
    "incident.resolved": "resolve",
}
OPSGENIE_SIGNALS: dict[str, Signal] = {"Acknowledge": "acknowledge", "Close": "resolve"}
UNKNOWN_ACTOR = "unknown"
ModelT = TypeVar("ModelT", bound=BaseModel)


class BadSignature(Unauthorized):
    """The webhook is not signed (or tokened) by a secret of the tenant."""

    default_headers = None  # not a Bearer credential: no WWW-Authenticate challenge


def _parse(model: type[ModelT], raw: bytes) -> ModelT:
    """Validate a body already authenticated, or raise the 422 naming each bad field."""
    body: Any = json_body(raw)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid(field_errors(exc, relocate=lambda loc: ("body", *loc))) from None


def _answer(answer: ResponderAnswer) -> JSONResponse:
    return JSONResponse(answer.model_dump(mode="json"), status_code=202)


@router.post(
    "/pagerduty/webhooks/{tenant_id}",
    operation_id="pagerdutyWebhook",
    status_code=202,
    response_model=ResponderAnswer,
    responses=ERRORS,
)
async def pagerduty_webhook(
    *,
    tenant_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> JSONResponse:
    """PagerDuty Webhooks v3: `incident.acknowledged` and `incident.resolved` act."""
    raw = await read_json_body(request, settings.max_body_bytes * BODY_FACTOR)
    secrets = await active_secrets(
        session=session, box=box, tenant_id=tenant_id, system=ResponderSystem.PAGERDUTY
    )
    if not pagerduty_signature_matches(raw, request.headers.get(SIGNATURE_HEADER), secrets):
        raise BadSignature(f"{SIGNATURE_HEADER} matches no active signing secret of the tenant")
    tenant_id_var.set(str(tenant_id))
    event = _parse(PagerDutyWebhook, raw).event
    agent, data = event.agent, event.data
    order = Order(
        system=ResponderSystem.PAGERDUTY,
        delivery_id=event.id,
        event_type=event.event_type,
        signal=PAGERDUTY_SIGNALS.get(event.event_type),
        incident_ref=data.incident_key if data else None,
        who=(agent.summary or agent.id or UNKNOWN_ACTOR) if agent else UNKNOWN_ACTOR,
        who_id=agent.id if agent else None,
    )
    return _answer(await carry_out(order, session=session, temporal=temporal, tenant_id=tenant_id))


@router.post(
    "/opsgenie/webhooks/{tenant_id}",
    operation_id="opsgenieWebhook",
    status_code=202,
    response_model=ResponderAnswer,
    responses=ERRORS,
)
async def opsgenie_webhook(
    *,
    tenant_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> JSONResponse:
    """Opsgenie outgoing webhook: the `Acknowledge` and `Close` actions act."""
    raw = await read_json_body(request, settings.max_body_bytes * BODY_FACTOR)
    secrets = await active_secrets(
        session=session, box=box, tenant_id=tenant_id, system=ResponderSystem.OPSGENIE
    )
    if not token_matches(request.headers.get(TOKEN_HEADER), secrets):
        raise BadSignature(f"{TOKEN_HEADER} is not an active Opsgenie token of the tenant")
    tenant_id_var.set(str(tenant_id))
    note = _parse(OpsgenieWebhook, raw)
    source_name = note.source.name if note.source else None
    order = Order(
        system=ResponderSystem.OPSGENIE,
        # Opsgenie sends no delivery id; a redelivery repeats the body, timestamps included.
        delivery_id=hashlib.sha256(raw).hexdigest(),
        event_type=note.action,
        signal=OPSGENIE_SIGNALS.get(note.action),
        incident_ref=note.alert.alias,
        who=note.alert.username or source_name or UNKNOWN_ACTOR,
    )
    return _answer(await carry_out(order, session=session, temporal=temporal, tenant_id=tenant_id))
