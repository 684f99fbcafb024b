"""Values PostgreSQL cannot store get a 422 naming the field on every intake, never a 5xx.

Bodies are raw bytes: JSON text can carry NaN, Infinity, 1e999, escaped NUL and lone surrogates,
raw surrogate bytes and deep nesting that `json=` in a client would never produce.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.test_integrations import AM_FIRING, PD_TRIGGER
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import failure_event, register_workflow

H = "__hostile__"
EVENTS = "/api/v1/events"
PAGERDUTY = "/api/v1/integrations/pagerduty/enqueue?workflow=billing-sync"
ALERTMANAGER = "/api/v1/integrations/alertmanager?workflow=billing-sync"
CLOUDEVENTS = "/api/v1/integrations/cloudevents"
JSON = {"Content-Type": "application/json"}
CE_JSON = {"Content-Type": "application/cloudevents+json"}
CE_BINARY = {
    **JSON,
    "ce-specversion": "1.0",
    "ce-type": "io.acme.workflow.step.failed",
    "ce-source": "/billing",
    "ce-id": "binary-1",
}

# Each value as JSON text, with the error type it must be reported as.
VALUES: dict[str, tuple[bytes, str]] = {
    "NaN": (b"NaN", "finite_number"),
    "Infinity": (b"Infinity", "finite_number"),
    "-Infinity": (b"-Infinity", "finite_number"),
    "1e999": (b"1e999", "finite_number"),
    "NUL": (b'"a\\u0000b"', "nul_character"),
    "lone surrogate": (b'"x\\ud800"', "invalid_unicode"),
    "surrogate bytes": (b'"\xed\xa0\x80"', "invalid_unicode"),
    "65 levels": (b"[" * 65 + b"]" * 65, "json_too_deep"),
    "300 levels": (b"[" * 300 + b"]" * 300, "json_too_deep"),  # beyond pydantic's parser
}


def with_hole(body: Any, value: bytes) -> bytes:
    """Serialise `body` and put `value` where the string `__hostile__` is."""
    raw = json.dumps(body).encode()
    assert raw.count(b'"' + H.encode() + b'"') == 1
    return raw.replace(b'"' + H.encode() + b'"', value)


def _pd(tenant: TenantCredentials, **payload: Any) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(PD_TRIGGER)
    body["routing_key"] = tenant.api_key
    body["payload"].update(payload)
    return body


def _alert(**changes: Any) -> dict[str, Any]:
    alert: dict[str, Any] = copy.deepcopy(AM_FIRING["alerts"][0])
    alert["fingerprint"] = uuid.uuid4().hex[:16]
    for key, value in changes.items():
        alert[key] = {**alert[key], **value} if isinstance(value, dict) else value
    return alert


def _am(*alerts: dict[str, Any]) -> dict[str, Any]:
    note: dict[str, Any] = {**copy.deepcopy(AM_FIRING), "alerts": list(alerts)}
    return note


def _ce(**data: Any) -> dict[str, Any]:
    failure = {"workflow": "billing-sync", "step": "charge-card", "error": {"code": "X"}}
    return {
        "specversion": "1.0",
        "type": "io.acme.workflow.step.failed",
        "source": "https://acme.example/billing",
        "id": uuid.uuid4().hex,
        "time": "2026-11-26T10:00:00Z",
        "data": {**failure, **data},
    }


async def _stored(http: httpx.AsyncClient, tenant: TenantCredentials) -> list[dict[str, Any]]:
    response = await http.get(EVENTS, headers=tenant.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def assert_names(problem: dict[str, Any], where: str, error_type: str) -> None:
    """The 422 problem has an error of `error_type` at the dotted path `where` (or inside it)."""
    loc = where.split(".")
    assert problem["status"] == 422 and problem["title"] == "Validation failed", problem
    found = [e for e in problem["errors"] if e["loc"][: len(loc)] == loc]
    assert found and found[0]["type"] == error_type, problem["errors"]
    assert where in problem["detail"]


Body = Callable[[TenantCredentials], Any]
# Intake, body with the hostile value's place, the path the 422 must name, headers.
SINGLE: dict[str, tuple[str, Body, str, dict[str, str]]] = {
    "event payload": (
        EVENTS,
        lambda _: failure_event(payload={"lines": [{"amount": H}]}),
        "payload.lines.0.amount",
        JSON,
    ),
    "event error.message": (
        EVENTS,
        lambda _: failure_event(error={"code": "X", "message": H}),
        "error.message",
        JSON,
    ),
    "event step": (EVENTS, lambda _: failure_event(step=H), "step", JSON),
    "event workflow": (EVENTS, lambda _: failure_event(workflow=H), "workflow", JSON),
    "event payload key": (
        EVENTS,
        lambda _: failure_event(payload={"k": [{H: 1}]}),
        "payload.k.0",
        JSON,
    ),
    "pagerduty custom_details": (
        PAGERDUTY,
        lambda t: _pd(t, custom_details={"disk": {"free": H}}),
        "payload.custom_details.disk.free",
        JSON,
    ),
    "pagerduty summary": (PAGERDUTY, lambda t: _pd(t, summary=H), "payload.summary", JSON),
    "alertmanager annotation": (
        ALERTMANAGER,
        lambda _: _am(_alert(annotations={"summary": H})),
        "alerts.0.annotations.summary",
        JSON,
    ),
    "alertmanager label": (
        ALERTMANAGER,
        lambda _: _am(_alert(labels={"instance": H})),
        "alerts.0.labels.instance",
        JSON,
    ),
    "alertmanager label name": (
        ALERTMANAGER,
        lambda _: _am(_alert(labels={H: "x"})),
        "alerts.0.labels",
        JSON,
    ),
    "cloudevent data": (
        CLOUDEVENTS,
        lambda _: _ce(payload={"x": [H]}),
        "data.payload.x.0",
        CE_JSON,
    ),
    "cloudevent data key": (CLOUDEVENTS, lambda _: _ce(payload={H: 1}), "data.payload", CE_JSON),
    "cloudevent binary body": (
        CLOUDEVENTS,
        lambda _: {"workflow": "billing-sync", "payload": {"x": H}},
        "body.payload.x",
        CE_BINARY,
    ),
}


# Field names can only hold the string values.
CASES = [
    (intake, value)
    for intake in SINGLE
    for value, (text, _) in VALUES.items()
    if text.startswith(b'"') or not intake.endswith(("key", "name"))
]


@pytest.mark.parametrize(("intake", "value"), CASES, ids=[f"{i}-{v}" for i, v in CASES])
async def test_a_hostile_value_is_a_422_naming_its_field_and_nothing_is_stored(
    http: httpx.AsyncClient, tenant: TenantCredentials, intake: str, value: str
) -> None:
    await register_workflow(http, tenant)
    url, body, where, headers = SINGLE[intake]
    text, error_type = VALUES[value]
    raw = with_hole(body(tenant), text)
    response = await http.post(url, content=raw, headers={**tenant.headers, **headers})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.content.isascii()  # escaped: an echoed surrogate cannot break the reply
    assert_names(response.json(), where, error_type)
    assert await _stored(http, tenant) == []


@pytest.mark.parametrize("value", VALUES, ids=list(VALUES))
async def test_a_batch_refuses_the_bad_item_alone_and_stores_the_others(
    http: httpx.AsyncClient, tenant: TenantCredentials, value: str
) -> None:
    await register_workflow(http, tenant)
    text, error_type = VALUES[value]
    items = [failure_event(), failure_event(payload={"deep": {"x": H}}), failure_event()]
    raw = with_hole({"events": items}, text)
    response = await http.post(f"{EVENTS}/batch", content=raw, headers={**tenant.headers, **JSON})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == [202, 422, 202]
    assert (body["accepted"], body["rejected"]) == (2, 1)
    error = body["results"][1]["errors"][0]
    assert (error["loc"][:5], error["type"]) == (
        ["events", "1", "payload", "deep", "x"],
        error_type,
    )
    assert body["results"][1]["error"].startswith("payload.deep.x")
    keys = {e["idempotency_key"] for e in await _stored(http, tenant)}
    assert keys == {items[0]["idempotency_key"], items[2]["idempotency_key"]}


@pytest.mark.parametrize("value", VALUES, ids=list(VALUES))
async def test_alertmanager_stores_the_good_alerts_and_reports_the_bad_one(
    http: httpx.AsyncClient, tenant: TenantCredentials, value: str
) -> None:
    await register_workflow(http, tenant)
    text, error_type = VALUES[value]
    raw = with_hole(_am(_alert(), _alert(annotations={"summary": H}), _alert()), text)
    response = await http.post(ALERTMANAGER, content=raw, headers={**tenant.headers, **JSON})
    assert response.status_code == 200, response.text
    body = response.json()
    counts = (body["status"], body["alerts"], body["accepted"], body["rejected"])
    assert counts == ("partial", 3, 2, 1)
    error = body["errors"][0]
    assert (error["loc"][:4], error["type"]) == (
        ["alerts", "1", "annotations", "summary"],
        error_type,
    )
    assert len(await _stored(http, tenant)) == 2


@pytest.mark.parametrize("value", VALUES, ids=list(VALUES))
async def test_a_cloudevents_batch_stores_the_good_events_and_reports_the_bad_one(
    http: httpx.AsyncClient, tenant: TenantCredentials, value: str
) -> None:
    await register_workflow(http, tenant)
    text, error_type = VALUES[value]
    raw = with_hole([_ce(), _ce(payload={"x": H})], text)
    headers = {**tenant.headers, "Content-Type": "application/cloudevents-batch+json"}
    response = await http.post(CLOUDEVENTS, content=raw, headers=headers)
    assert response.status_code == 202, response.text
    first, second = response.json()["results"]
    assert (first["status"], second["status"]) == ("accepted", "rejected")
    error = second["errors"][0]
    assert (error["loc"][:4], error["type"]) == (["1", "data", "payload", "x"], error_type)
    assert [e["id"] for e in await _stored(http, tenant)] == [first["event_id"]]


async def test_json_nested_64_levels_is_stored_and_65_is_refused(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    headers = {**tenant.headers, **JSON}
    # The event object is level 1 and `payload` level 2: 62 more arrays make 64 levels.
    fits = with_hole(failure_event(payload={"x": H}), b"[" * 62 + b"]" * 62)
    assert (await http.post(EVENTS, content=fits, headers=headers)).status_code == 202
    too_deep = with_hole(failure_event(payload={"x": H}), b"[" * 63 + b"]" * 63)
    refused = await http.post(EVENTS, content=too_deep, headers=headers)
    assert refused.status_code == 422
    assert_names(refused.json(), "payload.x" + ".0" * 61, "json_too_deep")


@pytest.mark.parametrize("url", [EVENTS, f"{EVENTS}/batch", PAGERDUTY, ALERTMANAGER])
async def test_json_too_deep_for_any_parser_is_a_422_naming_the_body(
    http: httpx.AsyncClient, tenant: TenantCredentials, url: str
) -> None:
    body = b'{"events": [{"payload": ' + b"[" * 20_000 + b"]" * 20_000 + b"}]}"
    response = await http.post(url, content=body, headers={**tenant.headers, **JSON})
    assert response.status_code == 422, response.text
    assert_names(response.json(), "body", "json_too_deep")


TIMESTAMPS: dict[str, tuple[str, Callable[[TenantCredentials, str], Any], str]] = {
    "event": (EVENTS, lambda t, m: failure_event(occurred_at=m), "occurred_at"),
    "pagerduty": (PAGERDUTY, lambda t, m: _pd(t, timestamp=m), "payload.timestamp"),
    "alertmanager": (ALERTMANAGER, lambda t, m: _am(_alert(startsAt=m)), "alerts.0.startsAt"),
    "cloudevent": (CLOUDEVENTS, lambda t, m: {**_ce(), "time": m}, "time"),
}


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00.5+00:01"])
@pytest.mark.parametrize("intake", TIMESTAMPS, ids=list(TIMESTAMPS))
async def test_timestamps_without_a_utc_form_are_a_422_naming_the_field(
    http: httpx.AsyncClient, tenant: TenantCredentials, intake: str, moment: str
) -> None:
    await register_workflow(http, tenant)
    url, body, where = TIMESTAMPS[intake]
    headers = {**tenant.headers, **(CE_JSON if url == CLOUDEVENTS else JSON)}
    response = await http.post(url, content=json.dumps(body(tenant, moment)), headers=headers)
    assert response.status_code == 422, response.text
    assert_names(response.json(), where, "datetime_out_of_range")
    assert await _stored(http, tenant) == []


def _bytes(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode()) for name, value in headers.items()]


@pytest.mark.parametrize(
    ("url", "header", "body"),
    [
        (EVENTS, "Idempotency-Key", {**failure_event(), "idempotency_key": None}),
        (CLOUDEVENTS, "ce-source", {"workflow": "billing-sync", "error": {"code": "X"}}),
    ],
)
async def test_nul_in_a_stored_header_is_a_422_naming_it(
    *, http: httpx.AsyncClient, tenant: TenantCredentials, url: str, header: str, body: Any
) -> None:
    await register_workflow(http, tenant)
    sent = {k: v for k, v in {**tenant.headers, **CE_BINARY}.items() if k != header}
    headers = [*_bytes(sent), (header.encode(), b"x\x00y")]
    response = await http.post(url, json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert_names(response.json(), f"header.{header}", "nul_character")
    assert await _stored(http, tenant) == []


def _cursor(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


FAR_PAST = "0001-01-01T00:00:00%2B14:00"
NO_UTC_CURSOR = _cursor(b'["0001-01-01T00:00:00+14:00", "6f1c2a3e-8d4b-4f6a-9c1e-2b3d4e5f6a7b"]')
NUMERIC_ID_CURSOR = _cursor(b'["2026-01-01T00:00:00+00:00", 5]')
PARAMETERS = [
    ("/api/v1/events?workflow=a%00b", "query.workflow"),
    ("/api/v1/events?error_code=%00", "query.error_code"),
    ("/api/v1/incidents?vendor=stripe%00", "query.vendor"),
    ("/api/v1/incidents?workflow=%00&limit=5", "query.workflow"),
    ("/api/v1/actions?status=ok%00", "query.status"),
    ("/api/v1/workflows/billing%00sync", "path.name"),
    (f"/api/v1/events?since={FAR_PAST}", "query.since"),
    (f"/api/v1/events?until={FAR_PAST}", "query.until"),
    (f"/api/v1/incidents?since={FAR_PAST}", "query.since"),
    ("/api/v1/incidents?until=0001-01-01T00:00:00.1%2B00:01", "query.until"),
    (f"/api/v1/events?cursor={NO_UTC_CURSOR}", "cursor"),
    (f"/api/v1/actions?cursor={NUMERIC_ID_CURSOR}", "cursor"),
]


@pytest.mark.parametrize(("url", "where"), PARAMETERS, ids=[p[0] for p in PARAMETERS])
async def test_unstorable_query_and_path_parameters_are_a_422_naming_them(
    http: httpx.AsyncClient, tenant: TenantCredentials, url: str, where: str
) -> None:
    response = await http.get(url, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert where in problem["detail"]
    if "errors" in problem:
        assert problem["errors"][0]["loc"] == where.split(".")


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
POLICY = {"max_attempts": 3, "initial_interval_s": H, "multiplier": 2, "max_interval_s": 10}
CALLBACK = "http://127.0.0.1/x"
BODIES: list[tuple[str, str, Any, str]] = [
    ("POST", "/api/v1/tenants", {"name": H}, "body.name"),
    ("PATCH", "/api/v1/tenants/{tenant}", {"name": H}, "body.name"),
    ("POST", "/api/v1/tenants/{tenant}/api-keys", {"scope": "ingest", "name": H}, "body.name"),
    (
        "POST",
        "/api/v1/workflows",
        {"name": "w", "callback_url": CALLBACK, "description": H},
        "body.description",
    ),
    (
        "POST",
        "/api/v1/workflows",
        {"name": "w", "callback_url": CALLBACK, "retry_policy": POLICY},
        "body.retry_policy.initial_interval_s",
    ),
    ("PATCH", "/api/v1/workflows/billing-sync", {"description": H}, "body.description"),
    ("POST", "/api/v1/kill-switches", {"workflow": "billing-sync", "reason": H}, "body.reason"),
    ("POST", f"/api/v1/incidents/{uuid.uuid4()}/kill", {"reason": H}, "body.reason"),
    ("POST", f"/api/v1/incidents/{uuid.uuid4()}/acknowledge", {"by": H}, "body.by"),
]


@pytest.mark.parametrize("value", ["NUL", "NaN", "lone surrogate"])
@pytest.mark.parametrize(
    ("method", "url", "body", "where"), BODIES, ids=[f"{b[0]} {b[1]} {b[3]}" for b in BODIES]
)
async def test_every_json_body_route_answers_422_naming_the_field(
    *,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    method: str,
    url: str,
    body: Any,
    where: str,
    value: str,
) -> None:
    await register_workflow(http, tenant)
    text, error_type = VALUES[value]
    headers = {**(ADMIN if "/tenants" in url else tenant.headers), **JSON}
    target = url.format(tenant=tenant.id)
    response = await http.request(method, target, content=with_hole(body, text), headers=headers)
    assert response.status_code == 422, response.text
    assert_names(response.json(), where, error_type)


BAD_URLS = [
    "http://127.0.0.1:0/retry",
    "http://127.0.0.1:65536/retry",
    "http://127.0.0.1:99999999999/retry",
    "http://127.0.0.1:80a/retry",
    "http://127.0.0.1:-1/retry",
    "http://127.0.0.1:+80/retry",
    "ftp://127.0.0.1/retry",
    "javascript:alert(1)//",
    "http:///retry-no-host",
    "http://user:pw@127.0.0.1/retry",
    "http://127.0.0.1\\@evil.example/x",
    "http://[::1/retry",
    "http://127.0.0.1/re try",
    "http://127.0.0.1/re\ntry",
    "http://127.0.0.1/\tretry",
    "http://127.0.0.1/re\u2028try",
    "http://xn--/retry",
    "http://bücher.127.0.0.1/retry",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("field", ["callback_url", "escalation_webhook_url"])
async def test_registration_refuses_urls_that_cannot_be_called(
    http: httpx.AsyncClient, tenant: TenantCredentials, url: str, field: str
) -> None:
    body = {"name": "w", "callback_url": "http://127.0.0.1:9/ok", field: url}
    created = await http.post("/api/v1/workflows", json=body, headers=tenant.headers)
    assert created.status_code == 422, created.text
    assert created.json()["detail"].startswith(f"{field}:")
    assert created.json()["errors"][0]["loc"] == ["body", field]
    await register_workflow(http, tenant, name="existing")
    patched = await http.patch(
        "/api/v1/workflows/existing", json={field: url}, headers=tenant.headers
    )
    assert patched.status_code == 422, patched.text
    assert patched.json()["detail"].startswith(f"{field}:")


async def test_registration_still_accepts_callable_urls(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    urls = ["http://127.0.0.1:65535/a?b=c#d", "https://localhost/x", "HTTP://LOCALHOST:1/"]
    for index, url in enumerate(urls):
        await register_workflow(http, tenant, name=f"ok-{index}", callback_url=url)
