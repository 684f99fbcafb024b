"""Malformed input never causes a 5xx; tenants never see each other's events; batches; listing."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import failure_event, register_workflow

MALFORMED: list[tuple[str, dict[str, str], bytes, int]] = [
    ("not json", {}, b"{nope", 422),
    ("json array", {}, b"[]", 422),
    ("json string", {}, b'"event"', 422),
    ("empty body", {}, b"", 422),
    ("wrong content type", {"Content-Type": "text/plain"}, b"{}", 415),
    (
        "unknown field",
        {},
        b'{"workflow": "billing-sync", "event_type": "step.failed", "x": 1}',
        422,
    ),
    ("bad event type", {}, b'{"workflow": "billing-sync", "event_type": "step.exploded"}', 422),
    ("missing workflow", {}, b'{"event_type": "step.failed", "error": {"code": "X"}}', 422),
    (
        "failure without error",
        {},
        b'{"idempotency_key": "k", "workflow": "billing-sync", "event_type": "step.failed"}',
        422,
    ),
    (
        "naive timestamp",
        {},
        b'{"idempotency_key": "k", "workflow": "billing-sync", "event_type":'
        b' "workflow.started", "occurred_at": "2026-11-26T10:00:00"}',
        422,
    ),
    (
        "numeric timestamp",
        {},
        b'{"idempotency_key": "k", "workflow": "billing-sync", "event_type":'
        b' "workflow.started", "occurred_at": 1764151200}',
        422,
    ),
    (
        "far future",
        {},
        b'{"idempotency_key": "k", "workflow": "billing-sync", "event_type":'
        b' "workflow.started", "occurred_at": "2099-01-01T00:00:00Z"}',
        422,
    ),
    (
        "key too long",
        {},
        b'{"idempotency_key": "' + b"k" * 201 + b'", "workflow": "billing-sync",'
        b' "event_type": "workflow.started"}',
        422,
    ),
    (
        "empty key",
        {},
        b'{"idempotency_key": "", "workflow": "billing-sync", "event_type": "workflow.started"}',
        422,
    ),
    (
        "bad http status",
        {},
        b'{"idempotency_key": "k", "workflow": "billing-sync", "event_type":'
        b' "step.failed", "error": {"code": "X", "http_status": 999}}',
        422,
    ),
    (
        "payload not object",
        {},
        b'{"idempotency_key": "k", "workflow": "billing-sync",'
        b' "event_type": "workflow.started", "payload": [1]}',
        422,
    ),
    (
        "workflow with spaces",
        {},
        b'{"idempotency_key": "k", "workflow": "a b", "event_type": "workflow.started"}',
        422,
    ),
    ("oversized body", {}, b'{"payload": "' + b"x" * 70_000 + b'"}', 413),
    (
        "error code with spaces",
        {},
        b'{"idempotency_key": "k", "workflow": "billing-sync",'
        b' "event_type": "step.failed", "error": {"code": "A B"}}',
        422,
    ),
]


@pytest.mark.parametrize(
    ("name", "headers", "body", "status"), MALFORMED, ids=[case[0] for case in MALFORMED]
)
async def test_malformed_events_get_problem_json_never_5xx(
    *,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    name: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    await register_workflow(http, tenant)
    sent = {
        "Content-Type": "application/json",
        **tenant.headers,
        **headers,
        "X-Correlation-ID": f"case-{uuid.uuid4().hex[:8]}",
    }
    response = await http.post("/api/v1/events", content=body, headers=sent)
    assert response.status_code == status, (name, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["correlation_id"] == sent["X-Correlation-ID"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer nope"}, 401),
        ({"Authorization": "Basic abc"}, 401),
        ({"Authorization": "Bearer awf_unknownkeyunknownkey"}, 401),
    ],
)
async def test_bad_credentials_are_401_problem_json(
    http: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    response = await http.post("/api/v1/events", json=failure_event(), headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def _second_tenant(http: httpx.AsyncClient) -> TenantCredentials:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = (
        await http.post(
            "/api/v1/tenants", json={"name": f"b-{uuid.uuid4().hex[:8]}"}, headers=admin
        )
    ).json()
    return TenantCredentials(uuid.UUID(created["id"]), created["name"], created["api_key"])


async def test_tenants_cannot_read_or_post_into_each_other(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    other = await _second_tenant(http)
    await register_workflow(http, tenant, name="a-only")
    posted = await http.post("/api/v1/events", json=failure_event("a-only"), headers=tenant.headers)
    event_id = posted.json()["event_id"]
    assert (await http.get(f"/api/v1/events/{event_id}", headers=tenant.headers)).status_code == 200
    assert (await http.get(f"/api/v1/events/{event_id}", headers=other.headers)).status_code == 404
    listed = (await http.get("/api/v1/events", headers=other.headers)).json()
    assert listed["items"] == []
    cross = await http.post("/api/v1/events", json=failure_event("a-only"), headers=other.headers)
    assert cross.status_code == 404


async def test_ingest_scoped_keys_post_but_cannot_read(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = await http.post(
        f"/api/v1/tenants/{tenant.id}/api-keys", json={"scope": "ingest"}, headers=admin
    )
    ingest = {"Authorization": f"Bearer {created.json()['api_key']}"}
    assert (
        await http.post("/api/v1/events", json=failure_event(), headers=ingest)
    ).status_code == 202
    assert (await http.get("/api/v1/events", headers=ingest)).status_code == 403
    assert (
        await http.post(
            "/api/v1/workflows",
            headers=ingest,
            json={"name": "x", "callback_url": "http://127.0.0.1/x"},
        )
    ).status_code == 403
    revoked = await http.delete(
        f"/api/v1/tenants/{tenant.id}/api-keys/{created.json()['id']}", headers=admin
    )
    assert revoked.status_code == 204
    assert (
        await http.post("/api/v1/events", json=failure_event(), headers=ingest)
    ).status_code == 401


async def test_batch_reports_each_item_in_order(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    good = failure_event()
    items = [
        good,
        {"workflow": "billing-sync"},
        failure_event("unknown-flow"),
        good,
        {**good, "payload": {"changed": True}},
    ]
    response = await http.post(
        "/api/v1/events/batch", json={"events": items}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == [202, 422, 404, 200, 409]
    assert body["results"][0]["event_id"] == body["results"][3]["event_id"]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 3)
    too_many = await http.post(
        "/api/v1/events/batch", headers=tenant.headers, json={"events": [good] * 1001}
    )
    assert too_many.status_code in (413, 422)


async def test_events_list_filters_and_paginates(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await register_workflow(http, tenant)
    for minute in range(5):
        event = failure_event(occurred_at=f"2026-11-26T10:0{minute}:00Z")
        assert (
            await http.post("/api/v1/events", json=event, headers=tenant.headers)
        ).status_code == 202
    other = failure_event(error={"code": "RATE_LIMITED"}, occurred_at="2026-11-26T11:00:00Z")
    await http.post("/api/v1/events", json=other, headers=tenant.headers)
    seen, cursor = [], None
    while True:
        params = {"limit": "2", "error_code": "VENDOR_TIMEOUT"} | (
            {"cursor": cursor} if cursor else {}
        )
        page = (await http.get("/api/v1/events", params=params, headers=tenant.headers)).json()
        seen += [item["occurred_at"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    window = await http.get(
        "/api/v1/events",
        headers=tenant.headers,
        params={"since": "2026-11-26T10:01:00Z", "until": "2026-11-26T10:03:00Z"},
    )
    assert len(window.json()["items"]) == 2
    bad = await http.get("/api/v1/events", params={"cursor": "garbage"}, headers=tenant.headers)
    assert bad.status_code == 422
