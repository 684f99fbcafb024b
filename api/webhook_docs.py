"""The OpenAPI `webhooks`: the requests AWFDRS sends, documented for the receivers' authors.

Nothing here serves a route. The bodies mirror `activities/remediation.py` `callback_body` and
`activities/escalation.py` `pagerduty_body`; the headers are those of `activities/signing.py`
(Standard Webhooks) and of the callers. A test validates real requests against these schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Response
from pydantic import BaseModel, ConfigDict, Field

CALLBACK_ANSWERS: dict[int | str, dict[str, Any]] = {
    "3XX": {"description": "Not followed: the incident escalates"},
    "4XX": {"description": "Refused: the incident escalates; 408 and 429 are retried"},
    "5XX": {"description": "Retried with backoff (a `Retry-After` is honoured), then escalated"},
}
PAGE_ANSWERS: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": "Not delivered: recorded as a failed escalation action"},
    "5XX": {"description": "Not delivered: recorded as a failed escalation action"},
}
webhooks = APIRouter()


class FailureCause(BaseModel):
    """The failure the callback retries, as the original event reported it."""

    code: str | None = Field(description="The event's `error.code`")
    message: str | None = Field(description="The event's `error.message`")


class IncidentCallback(BaseModel):
    """The body of one callback: the incident, the attempt and the failure."""

    model_config = ConfigDict(title="IncidentCallback")
    incident_id: str = Field(description="The incident's id (a UUID)")
    incident_key: str = Field(description="The incident's workflow id")
    attempt: int = Field(ge=1, description="1 for the first retry; unique with `incident_id`")
    workflow: str = Field(description="The registered workflow that failed")
    step: str | None = Field(description="The step to retry")
    vendor: str | None = Field(description="The vendor the step called")
    error: FailureCause
    payload: Any = Field(description="The failure event's `payload`, as stored")


class PageDetails(BaseModel):
    """AWFDRS's own fields of a page."""

    incident_id: str
    level: int = Field(ge=1, description="1-based escalation level")
    level_name: str
    attempts: int = Field(description="Callback attempts made so far")
    event_count: int = Field(description="Events folded into the incident")


class PagePayload(BaseModel):
    """The `payload` of a PagerDuty Events v2 trigger."""

    summary: str = Field(max_length=1024)
    source: str
    severity: Literal["critical", "error", "warning", "info"]
    component: str
    group: str
    class_: str = Field(alias="class")
    custom_details: PageDetails


class PageLink(BaseModel):
    """A link shown with the alert."""

    href: str
    text: str


class EscalationPage(BaseModel):
    """A PagerDuty Events v2 `trigger`; `dedup_key` is the incident id."""

    event_action: Literal["trigger"]
    dedup_key: str
    payload: PagePayload
    links: list[PageLink] | None = Field(default=None, description="The incident's timeline")


WebhookId = Annotated[str, Header(alias="webhook-id", description="The attempt's idempotency key")]
WebhookTimestamp = Annotated[
    str, Header(alias="webhook-timestamp", description="Unix seconds when the request was signed")
]
WebhookSignature = Annotated[
    str,
    Header(
        alias="webhook-signature",
        description='Space-separated `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, '
        "one per active signing secret",
    ),
]
LegacySignature = Annotated[
    str,
    Header(alias="X-AWFDRS-Signature", description="`sha256=<hex HMAC of the body>`, first secret"),
]
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", description="Same as webhook-id")]
TraceParent = Annotated[
    str | None,
    Header(description="W3C trace context continuing the failure event's trace (tracing on)"),
]
CorrelationId = Annotated[
    str, Header(alias="X-Correlation-ID", description="The failure event's correlation id")
]


@webhooks.post(
    "incidentCallback",
    operation_id="incidentCallback",
    status_code=200,
    response_class=Response,
    response_description="Any 2xx: the retried step succeeded and the incident resolves",
    responses=CALLBACK_ANSWERS,
)
def incident_callback(
    body: Annotated[IncidentCallback, Body()],
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
    signature: LegacySignature,
    idempotency_key: IdempotencyKey,
    correlation_id: CorrelationId,
    traceparent: TraceParent = None,
) -> None:
    """Retry of a failed step, POSTed to the workflow's `callback_url`; answer 2xx when done."""


@webhooks.post(
    "escalationPage",
    operation_id="escalationPage",
    status_code=202,
    response_class=Response,
    response_description="Any 2xx: the page was delivered",
    responses=PAGE_ANSWERS,
)
def escalation_page(
    body: Annotated[EscalationPage, Body()],
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
    signature: LegacySignature,
    idempotency_key: IdempotencyKey,
    correlation_id: CorrelationId,
    traceparent: TraceParent = None,
) -> None:
    """A page to an escalation level's webhook, in PagerDuty Events v2 form."""
