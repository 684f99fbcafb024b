"""Responder webhooks: configuration, rotation, and every bad input answered as a problem."""

from __future__ import annotations

import json
import logging
import uuid

import asyncpg
import httpx
import pytest

from api.app import create_app
from devstack.process import free_port
from settings import Settings
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.responders import (
    PD_SECRET,
    PD_SECRET_NEXT,
    SECRETS_PATH,
    add_secret,
    opsgenie_action,
    pagerduty_event,
    pagerduty_signature,
    post_opsgenie,
    post_pagerduty,
)

PD_SECRETS = SECRETS_PATH.format(system="pagerduty")


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    return body


async def test_secrets_are_listed_masked_and_never_returned_or_logged(
    http: httpx.AsyncClient, tenant: TenantCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await add_secret(http, tenant, "pagerduty", PD_SECRET)
    generated = await add_secret(http, tenant, "opsgenie")
    listed = (await http.get(PD_SECRETS, headers=tenant.headers)).json()
    body = pagerduty_event("incident.resolved", str(uuid.uuid4()))
    verified = await post_pagerduty(http, tenant.id, body, PD_SECRET)
    refused = await post_pagerduty(http, tenant.id, body, PD_SECRET_NEXT)
    token = generated["generated_token"]
    opsgenie = await post_opsgenie(http, tenant.id, opsgenie_action("Close", "x"), token + "x")
    assert (verified.status_code, refused.status_code, opsgenie.status_code) == (202, 401, 401)
    for answer in (verified, refused, opsgenie):
        assert PD_SECRET not in answer.text and token not in answer.text
    assert caplog.records  # the requests were logged (SQL included), without the secrets
    assert PD_SECRET not in caplog.text and token not in caplog.text
    assert created["masked"] == "••••0001" and created["generated_token"] is None
    assert created["webhook_path"] == f"/api/v1/integrations/pagerduty/webhooks/{tenant.id}"
    assert generated["webhook_path"] == f"/api/v1/integrations/opsgenie/webhooks/{tenant.id}"
    assert len(generated["generated_token"]) >= 40
    assert generated["masked"] == "••••" + generated["generated_token"][-4:]
    assert listed == [{k: v for k, v in created.items() if k != "generated_token"}]
    assert PD_SECRET not in json.dumps(listed)


async def test_a_pagerduty_secret_must_be_sent_and_an_ingest_key_may_not_configure(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    missing = _problem(await http.post(PD_SECRETS, headers=tenant.headers), 422)
    short = _problem(await http.post(PD_SECRETS, headers=tenant.headers, json={"secret": "x"}), 422)
    unknown = await http.get(SECRETS_PATH.format(system="slack"), headers=tenant.headers)
    anonymous = await http.get(PD_SECRETS)
    assert missing["errors"][0]["loc"] == ["body", "secret"]  # type: ignore[index]
    assert short["errors"][0]["loc"] == ["body", "secret"]  # type: ignore[index]
    _problem(unknown, 422)
    _problem(anonymous, 401)


async def test_two_secrets_are_valid_during_a_rotation_and_a_retired_one_is_not(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    old = await add_secret(http, tenant, "pagerduty", PD_SECRET)
    await add_secret(http, tenant, "pagerduty", PD_SECRET_NEXT)
    body = pagerduty_event("incident.resolved", str(uuid.uuid4()))
    by_old = await post_pagerduty(http, tenant.id, body, PD_SECRET)
    by_new = await post_pagerduty(http, tenant.id, body, PD_SECRET_NEXT)
    by_both = await post_pagerduty(http, tenant.id, body, PD_SECRET, PD_SECRET_NEXT)
    retired = await http.delete(f"{PD_SECRETS}/{old['id']}", headers=tenant.headers)
    after = await post_pagerduty(http, tenant.id, body, PD_SECRET)
    still = await post_pagerduty(http, tenant.id, body, PD_SECRET_NEXT)
    for accepted in (by_old, by_new, by_both, still):
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["status"] == "ignored"
        assert accepted.json()["reason"].startswith("no such incident")
    assert retired.status_code == 204
    _problem(after, 401)
    listed = (await http.get(PD_SECRETS, headers=tenant.headers)).json()
    assert [s["active"] for s in listed] == [False, True]


async def test_another_tenants_secret_does_not_open_this_tenant(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    body = pagerduty_event("incident.resolved", str(uuid.uuid4()))
    _problem(await post_pagerduty(http, uuid.uuid4(), body, PD_SECRET), 401)


async def test_events_not_acted_on_are_accepted_with_a_reason(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    annotated = pagerduty_event("incident.annotated", str(uuid.uuid4()))
    foreign = pagerduty_event("incident.resolved", "srv01/mysql")
    other = await post_pagerduty(http, tenant.id, annotated, PD_SECRET)
    not_ours = await post_pagerduty(http, tenant.id, foreign, PD_SECRET)
    assert other.status_code == 202 and other.json()["status"] == "ignored"
    assert "incident.annotated" in other.json()["reason"]
    assert not_ours.status_code == 202 and not_ours.json()["status"] == "ignored"
    assert "srv01/mysql" in not_ours.json()["reason"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b"{not json", ["body"]),
        (b"[]", ["body"]),
        (json.dumps({"event": {"event_type": "incident.resolved"}}), ["body", "event", "id"]),
        (json.dumps({"event": {"id": "E1", "event_type": ""}}), ["body", "event", "event_type"]),
        (
            json.dumps({"event": {"id": "E1", "event_type": "x", "data": {"incident_key": 7}}}),
            ["body", "event", "data", "incident_key"],
        ),
        (json.dumps({"event": {"id": "E\u0000", "event_type": "x"}}), ["body", "event", "id"]),
    ],
)
async def test_a_signed_body_that_is_not_a_v3_event_is_a_422_naming_the_field(
    http: httpx.AsyncClient, tenant: TenantCredentials, body: bytes | str, loc: list[str]
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    raw = body.encode() if isinstance(body, str) else body
    response = await http.post(
        f"/api/v1/integrations/pagerduty/webhooks/{tenant.id}",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-PagerDuty-Signature": pagerduty_signature(raw, PD_SECRET),
        },
    )
    problem = _problem(response, 422)
    assert problem["errors"][0]["loc"] == loc  # type: ignore[index]


async def test_the_signature_is_checked_before_the_body_is_parsed(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    response = await http.post(
        f"/api/v1/integrations/pagerduty/webhooks/{tenant.id}",
        content=b"{not json",
        headers={"Content-Type": "application/json", "X-PagerDuty-Signature": "v1=abc"},
    )
    _problem(response, 401)


async def test_wrong_media_type_and_oversized_bodies_are_refused(
    http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    url = f"/api/v1/integrations/pagerduty/webhooks/{tenant.id}"
    text = await http.post(url, content=b"event", headers={"Content-Type": "text/plain"})
    huge = b'{"pad": "' + b"x" * (settings.max_body_bytes * 4) + b'"}'
    large = await http.post(url, content=huge, headers={"Content-Type": "application/json"})
    _problem(text, 415)
    _problem(large, 413)


async def test_opsgenie_needs_its_token_and_names_bad_fields(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    token = (await add_secret(http, tenant, "opsgenie"))["generated_token"]
    alias = str(uuid.uuid4())
    missing = await http.post(
        f"/api/v1/integrations/opsgenie/webhooks/{tenant.id}", json=opsgenie_action("Close", alias)
    )
    no_alert = await post_opsgenie(http, tenant.id, {"action": "Close"}, token)
    other = await post_opsgenie(http, tenant.id, opsgenie_action("AddNote", alias), token)
    _problem(missing, 401)
    assert _problem(no_alert, 422)["errors"][0]["loc"] == ["body", "alert"]  # type: ignore[index]
    assert other.status_code == 202 and other.json()["status"] == "ignored"


async def _stored_incident(settings: Settings, tenant: TenantCredentials) -> str:
    """An escalated incident row whose workflow Temporal has never heard of."""
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        incident_id = await conn.fetchval(
            """INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, source_workflow,
                   signature, title, first_seen_at, last_seen_at)
               VALUES (gen_random_uuid(), $1, $2, 'run', 'escalated', 'billing-sync', 's', '',
                   now(), now()) RETURNING id""",
            tenant.id,
            f"incident:{tenant.id}:{uuid.uuid4().hex}",
        )
    finally:
        await conn.close()
    return str(incident_id)


async def test_temporal_down_is_a_503_and_the_retry_acts(
    http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    await add_secret(http, tenant, "pagerduty", PD_SECRET)
    incident_id = await _stored_incident(settings, tenant)
    body = pagerduty_event("incident.resolved", incident_id)
    down = settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{free_port()}", "dispatcher_enabled": False}
    )
    app = create_app(down)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as without_temporal,
    ):
        refused = await post_pagerduty(without_temporal, tenant.id, body, PD_SECRET)
    retried = await post_pagerduty(http, tenant.id, body, PD_SECRET)
    assert _problem(refused, 503)["dependency"] == "temporal"
    # Not "duplicate": the refused delivery left no receipt behind.
    assert retried.status_code == 202 and retried.json()["status"] == "ignored", retried.text
    assert retried.json()["reason"] == "incident already ended"


async def test_an_incident_of_another_tenant_is_no_such_incident(
    http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    incident_id = await _stored_incident(settings, tenant)
    created = await http.post(
        "/api/v1/tenants",
        json={"name": f"other-{uuid.uuid4().hex[:8]}"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    other = TenantCredentials(
        id=uuid.UUID(created.json()["id"]), name="other", api_key=created.json()["api_key"]
    )
    await add_secret(http, other, "pagerduty", PD_SECRET)
    body = pagerduty_event("incident.resolved", incident_id)
    answer = await post_pagerduty(http, other.id, body, PD_SECRET)
    assert answer.status_code == 202 and answer.json()["status"] == "ignored", answer.text
    assert answer.json()["reason"].startswith("no such incident")
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        status = await conn.fetchval("SELECT status FROM incidents WHERE id = $1", incident_id)
        receipts = await conn.fetchval(
            "SELECT count(*) FROM responder_receipts WHERE incident_id = $1", incident_id
        )
    finally:
        await conn.close()
    assert status == "escalated"
    assert receipts == 0
