"""Signing secrets: shown once, listed masked, rotated with an overlap, never all retired."""

from __future__ import annotations

import uuid

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

from devstack.http_target import Call, CallbackServer, Reply
from models.signing import key_of
from settings import Settings
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter
from tests.utils.signatures import SignatureAudit, first_secret, page_once, secrets_url

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_a_new_tenant_gets_its_first_secret_once_in_both_forms(
    http: httpx.AsyncClient,
) -> None:
    created = await http.post(
        "/api/v1/tenants", json={"name": f"t-{uuid.uuid4().hex[:10]}"}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["signing_secret"]
    assert secret.startswith("whsec_")
    # `hmac_secret` keeps its meaning: the text that keys X-AWFDRS-Signature, the same key.
    assert body["hmac_secret"].encode() == key_of(secret)
    listed = await http.get(secrets_url(body["id"]), headers=ADMIN)
    assert listed.status_code == 200
    (only,) = listed.json()
    assert only["id"] == body["signing_secret_id"]
    assert (only["masked"], only["active"], only["retired_at"]) == (
        f"••••{secret[-4:]}",
        True,
        None,
    )
    assert secret not in listed.text and body["hmac_secret"] not in listed.text


async def test_secrets_rotate_and_the_last_active_one_cannot_be_retired(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    url = secrets_url(tenant.id)
    (first,) = (await http.get(url, headers=ADMIN)).json()
    added = await http.post(url, headers=ADMIN)
    assert added.status_code == 201, added.text
    second = added.json()
    assert second["secret"].startswith("whsec_") and second["active"] is True
    listed = await http.get(url, headers=ADMIN)
    assert [s["id"] for s in listed.json()] == [first["id"], second["id"]]
    assert second["secret"] not in listed.text

    assert (await http.delete(f"{url}/{first['id']}", headers=ADMIN)).status_code == 204
    retired = {s["id"]: s for s in (await http.get(url, headers=ADMIN)).json()}[first["id"]]
    assert retired["active"] is False and retired["retired_at"] is not None  # kept for audit
    last = await http.delete(f"{url}/{second['id']}", headers=ADMIN)
    assert last.status_code == 409, last.text
    assert "last active" in last.json()["detail"]
    assert (await http.delete(f"{url}/{first['id']}", headers=ADMIN)).status_code == 204


async def test_secrets_of_other_tenants_and_callers_without_the_admin_token_are_refused(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    other = await http.post(
        "/api/v1/tenants", json={"name": f"t-{uuid.uuid4().hex[:10]}"}, headers=ADMIN
    )
    foreign = other.json()["signing_secret_id"]
    url = secrets_url(tenant.id)
    assert (await http.delete(f"{url}/{foreign}", headers=ADMIN)).status_code == 404
    assert (await http.delete(f"{url}/{uuid.uuid4()}", headers=ADMIN)).status_code == 404
    assert (await http.post(secrets_url(uuid.uuid4()), headers=ADMIN)).status_code == 404
    assert (await http.get(url, headers=tenant.headers)).status_code in (401, 403)
    assert (await http.post(url)).status_code == 401


def _verifies(secret: str, call: Call) -> bool:
    try:
        Webhook(secret).verify(call.raw, call.headers)
    except WebhookVerificationError:
        return False
    return True


async def test_during_rotation_callbacks_and_pages_verify_with_both_secrets(
    *,
    live: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
    signature_audit: SignatureAudit,
) -> None:
    verified_before = signature_audit.verified
    old = await first_secret(settings, tenant)
    async with CallbackServer([Reply(422)]) as callback, CallbackServer([Reply(202)]) as pager:
        await register_workflow(
            http, tenant, callback_url=callback.url, escalation_webhook_url=pager.url
        )
        new = (await http.post(secrets_url(tenant.id), headers=ADMIN)).json()
        await page_once(live, pager)
        overlap = [callback.calls[-1], pager.calls[-1]]
        listed = (await http.get(secrets_url(tenant.id), headers=ADMIN)).json()
        old_id = next(s["id"] for s in listed if s["id"] != new["id"])
        retired = await http.delete(f"{secrets_url(tenant.id)}/{old_id}", headers=ADMIN)
        assert retired.status_code == 204
        await page_once(live, pager)
        after = [callback.calls[-1], pager.calls[-1]]
    for call in overlap:
        assert _verifies(old, call) and _verifies(new["secret"], call), call.path
        assert len(call.headers["webhook-signature"].split(" ")) == 2
    for call in after:
        assert _verifies(new["secret"], call) and not _verifies(old, call), call.path
    # The suite's own audit saw the same four requests and verified them too.
    assert signature_audit.settle() == []
    assert signature_audit.verified >= verified_before + 4
