"""Map PagerDuty Events v2, Alertmanager v4 and CloudEvents 1.0 onto the internal event.

Every adapter produces `EventIn` objects that then take the one intake path (auth, validation,
rate limit, idempotency, outbox). Alerts use the catalogue code `ALERT`, and the alert's own
identity (PagerDuty `dedup_key`, Alertmanager `alertname` + `fingerprint`) as the step, so the
incident signature follows the source system's de-duplication.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, ValidationError

from api.validation import InvalidItem, invalid_item
from models.schemas.common import relocator
from models.schemas.events import EventIn
from models.schemas.storable import Loc, StorableModel, UtcDateTime
from vocabulary import FAILURE_TYPES, EventType, PageSeverity

ALERT_CODE = "ALERT"
Converted = tuple[EventIn, str] | InvalidItem
# Where each internal field came from, so that a refused value is named as the client sent it.
PAGERDUTY_SOURCES = relocator(
    {
        "step": ("dedup_key",),
        "occurred_at": ("payload", "timestamp"),
        "error.message": ("payload", "summary"),
    }
)
ALERT_SOURCES = relocator({"occurred_at": ("startsAt",)})
CLOUDEVENT_SOURCES = relocator(
    {
        "workflow": ("data", "workflow"),
        "event_type": ("type",),
        "step": ("data", "step"),
        "vendor": ("data", "vendor"),
        "occurred_at": ("time",),
        "error": ("data", "error"),
        "payload": ("data", "payload"),
    }
)


def _key(*parts: str) -> str:
    """Derive a bounded idempotency key from the parts that identify a delivery."""
    return "h:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _summary(text: str | None) -> str | None:
    return text[:4000] if text else None


# --- PagerDuty Events API v2 ---------------------------------------------------------------


class PagerDutyPayload(StorableModel):
    """The `payload` of a trigger."""

    model_config = ConfigDict(extra="allow")
    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1, max_length=255)
    severity: PageSeverity
    timestamp: UtcDateTime | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] | None = None


class PagerDutyEvent(StorableModel):
    """A `/v2/enqueue` body."""

    model_config = ConfigDict(extra="allow")
    routing_key: str = Field(min_length=1, max_length=200)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, max_length=255)
    payload: PagerDutyPayload | None = None
    client: str | None = None
    client_url: str | None = None


def pagerduty_event(event: PagerDutyEvent, workflow: str) -> tuple[EventIn, str, str]:
    """Map a trigger or resolve to (event, idempotency key, dedup_key)."""
    dedup_key = event.dedup_key or str(uuid.uuid4())
    if event.event_action == "resolve":
        internal = EventIn(workflow=workflow, event_type=EventType.STEP_SUCCEEDED, step=dedup_key)
        return internal, _key("pd", dedup_key, "resolve", str(uuid.uuid4())), dedup_key
    assert event.payload is not None
    payload = event.payload
    internal = EventIn(
        workflow=workflow,
        event_type=EventType.STEP_FAILED,
        step=dedup_key,
        occurred_at=_isoformat(payload.timestamp),
        error={"code": ALERT_CODE, "message": _summary(payload.summary)},
        payload={
            "pagerduty": event.model_dump(mode="json", exclude={"routing_key"}, by_alias=True)
        },
    )
    # PagerDuty has no idempotency: every trigger is a new log entry on the open alert.
    return internal, _key("pd", dedup_key, str(uuid.uuid4())), dedup_key


def _isoformat(value: datetime | None) -> str | None:
    # `UtcDateTime` already read a naive timestamp as UTC.
    return value.isoformat() if value is not None else None


# --- Alertmanager webhook v4 ---------------------------------------------------------------


class AlertmanagerAlert(StorableModel):
    """One alert of a notification."""

    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str = Field(min_length=1, max_length=100)


class AlertmanagerNotification(StorableModel):
    """A webhook notification (version 4; unknown fields are tolerated)."""

    model_config = ConfigDict(extra="allow")
    per_item_fields: ClassVar[frozenset[str]] = frozenset({"alerts"})
    version: str
    groupKey: str = Field(max_length=2000)
    status: Literal["firing", "resolved"]
    # Raw here: each alert is validated and stored on its own, like the items of a batch.
    alerts: list[Any] = Field(
        min_length=1, max_length=1000, json_schema_extra={"items": {"type": "object"}}
    )


def alertmanager_events(note: AlertmanagerNotification, workflow: str) -> list[Converted]:
    """One event per alert, or why that alert is refused; the others are unaffected."""
    converted: list[Converted] = []
    for index, raw in enumerate(note.alerts):
        try:
            alert = AlertmanagerAlert.model_validate(raw)
        except ValidationError as exc:
            converted.append(invalid_item(exc, prefix=("alerts", index)))
            continue
        try:
            converted.append(_alert_event(note, alert, workflow))
        except ValidationError as exc:
            converted.append(invalid_item(exc, prefix=("alerts", index), relocate=ALERT_SOURCES))
    return converted


def _alert_event(
    note: AlertmanagerNotification, alert: AlertmanagerAlert, workflow: str
) -> tuple[EventIn, str]:
    """Map one alert, idempotent per (group key, fingerprint, status, startsAt)."""
    step = f"{alert.labels.get('alertname', 'alert')}:{alert.fingerprint}"[:200]
    key = _key("am", note.groupKey, alert.fingerprint, alert.status, alert.startsAt)
    if alert.status == "resolved":
        return EventIn(workflow=workflow, event_type=EventType.STEP_SUCCEEDED, step=step), key
    event = EventIn(
        workflow=workflow,
        event_type=EventType.STEP_FAILED,
        step=step,
        occurred_at=alert.startsAt,
        error={
            "code": ALERT_CODE,
            "message": _summary(alert.annotations.get("summary") or alert.labels.get("alertname")),
        },
        payload={
            "labels": alert.labels,
            "annotations": alert.annotations,
            "generatorURL": alert.generatorURL,
            "groupKey": note.groupKey,
        },
    )
    return event, key


# --- CloudEvents 1.0 -----------------------------------------------------------------------


class CloudEvent(StorableModel):
    """A CloudEvent (structured JSON form); `data` carries the workflow failure."""

    model_config = ConfigDict(extra="allow")
    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=500)
    source: str = Field(min_length=1, max_length=1000)
    type: str = Field(min_length=1, max_length=500)
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    data: Any = None


def cloud_event(event: CloudEvent, default_workflow: str | None) -> tuple[EventIn, str]:
    """Map by `type` suffix (.failed / .succeeded / .recovered / .started); key = source + id."""
    data = event.data if isinstance(event.data, dict) else {}
    workflow = data.get("workflow") or default_workflow or event.subject
    event_type = cloud_event_type(event.type, has_step=bool(data.get("step")))
    error = data.get("error") if isinstance(data.get("error"), dict) else None
    body = {
        "workflow": workflow,
        "event_type": event_type,
        "step": data.get("step"),
        "vendor": data.get("vendor"),
        "occurred_at": event.time,
        "error": {k: error.get(k) for k in ("code", "message", "http_status") if k in error}
        if error and event_type in FAILURE_TYPES
        else None,
        "payload": {
            "cloudevent": {"id": event.id, "source": event.source, "type": event.type},
            "data": data.get("payload", {}),
        },
    }
    key = f"ce:{event.source}:{event.id}"
    return EventIn.model_validate(body), key if len(key) <= 200 else _key(
        "ce", event.source, event.id
    )


def cloud_event_type(ce_type: str, *, has_step: bool) -> EventType | None:
    """The event type a CloudEvent `type` names by its suffix; None when it names none."""
    # `….step.failed` or a step in the data: a step event; otherwise the whole workflow's.
    step = has_step or ".step." in f".{ce_type}."
    failed, succeeded = (
        (EventType.STEP_FAILED, EventType.STEP_SUCCEEDED)
        if step
        else (EventType.WORKFLOW_FAILED, EventType.WORKFLOW_SUCCEEDED)
    )
    return {
        "failed": failed,
        "succeeded": succeeded,
        "recovered": succeeded,
        "started": EventType.WORKFLOW_STARTED,
    }.get(ce_type.rsplit(".", 1)[-1])


def cloud_event_item(
    raw: object,
    *,
    default_workflow: str | None,
    prefix: Loc = (),
    relocate: Callable[[Loc], Loc] = lambda loc: loc,
) -> Converted:
    """Validate and map one CloudEvent, or say why it is refused; `relocate` is for binary mode."""
    try:
        event = CloudEvent.model_validate(raw)
    except ValidationError as exc:
        return invalid_item(exc, prefix=prefix, relocate=relocate)
    try:
        return cloud_event(event, default_workflow)
    except ValidationError as exc:
        return invalid_item(
            exc, prefix=prefix, relocate=lambda loc: relocate(CLOUDEVENT_SOURCES(loc))
        )


def binary_mode_source(loc: Loc) -> Loc:
    """Name where a binary-mode CloudEvent value came from: a `ce-` header or the body."""
    if not loc:
        return loc
    if loc[0] == "data":
        return ("body", *loc[1:])
    header = "content-type" if loc[0] == "datacontenttype" else f"ce-{loc[0]}"
    return ("header", header, *loc[1:])
