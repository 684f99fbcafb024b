"""Standard Webhooks signatures as `standardwebhooks` verifies them, during and after rotation."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook, WebhookVerificationError

from activities.signing import NoSigningSecret, WebhookSigner, signature_headers
from api.services.signing_secrets import (
    issue_signing_secret,
    list_signing_secrets,
    retire_signing_secret,
)
from devstack.http_target import Call
from models.db import create_engine, create_session_factory
from models.secret_box import SecretBox
from models.signing import generate_secret, hmac_secret_of
from models.stored_secrets import SIGNING_SECRETS
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.signatures import verify_call

BODY = json.dumps({"incident_id": "i-1", "attempt": 1}, separators=(",", ":")).encode()


def test_one_secret_gives_headers_standardwebhooks_verifies() -> None:
    secret = generate_secret()
    headers = signature_headers([secret], message_id="i-1:1", timestamp=int(time.time()), body=BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    assert headers["webhook-id"] == "i-1:1"
    assert headers["webhook-signature"].startswith("v1,")
    # The legacy header: HMAC-SHA256 of the body keyed with `hmac_secret`, the same key as text.
    legacy = hmac.new(hmac_secret_of(secret).encode(), BODY, hashlib.sha256).hexdigest()
    assert headers["X-AWFDRS-Signature"] == f"sha256={legacy}"


def test_two_secrets_give_two_signatures_each_verifying_on_its_own() -> None:
    old, new, stranger = generate_secret(), generate_secret(), generate_secret()
    headers = signature_headers(
        [old, new], message_id="i-1:2", timestamp=int(time.time()), body=BODY
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, headers)


def test_a_changed_body_id_or_timestamp_does_not_verify() -> None:
    secret = generate_secret()
    now = int(time.time())
    headers = signature_headers([secret], message_id="i-1:1", timestamp=now, body=BODY)
    tampered = [
        (BODY.replace(b"1}", b"2}"), headers),
        (BODY, {**headers, "webhook-id": "i-1:2"}),
        (BODY, {**headers, "webhook-timestamp": str(now + 1)}),
    ]
    for body, sent in tampered:
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body, sent)


def test_nothing_is_signed_without_an_active_secret() -> None:
    with pytest.raises(NoSigningSecret):
        signature_headers([], message_id="i-1:1", timestamp=0, body=BODY)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's database."""
    engine = create_engine(settings, pool_size=2)
    yield engine
    await engine.dispose()


async def test_the_signer_uses_the_secrets_active_at_send_time(
    settings: Settings, engine: AsyncEngine, tenant: TenantCredentials
) -> None:
    box = SecretBox.from_settings(settings)
    signer = WebhookSigner(engine=engine, box=box, clock=lambda: 1_700_000_000.9)
    first = await signer.active_secrets(str(tenant.id))
    assert len(first) == 1 and first[0].startswith("whsec_")
    async with create_session_factory(engine)() as session:
        added = await issue_signing_secret(session=session, box=box, tenant_id=tenant.id)
        await session.commit()
    headers = await signer.headers(str(tenant.id), message_id="m-1", body=BODY)
    assert headers["webhook-timestamp"] == "1700000000"  # Unix seconds at send time
    assert headers == signature_headers(
        [first[0], added.secret], message_id="m-1", timestamp=1_700_000_000, body=BODY
    )
    async with create_session_factory(engine)() as session:
        listed = await list_signing_secrets(session=session, tenant_id=tenant.id)
        old_id = next(s.id for s in listed if s.id != added.id)
        await retire_signing_secret(session=session, tenant_id=tenant.id, secret_id=old_id)
    assert await signer.active_secrets(str(tenant.id)) == [added.secret]


def _row(box: SecretBox, tenant_id: uuid.UUID, secret: str) -> dict[str, object]:
    sealed = box.encrypt(secret, context=SIGNING_SECRETS.context(tenant_id))
    created = datetime.now(UTC) - timedelta(minutes=1)
    return {"tenant_id": tenant_id, "secret_encrypted": sealed, "created_at": created}


def test_the_suites_audit_refuses_what_a_receiver_would_refuse(settings: Settings) -> None:
    box, tenant_id = SecretBox.from_settings(settings), uuid.uuid4()
    old, new, stranger = generate_secret(), generate_secret(), generate_secret()
    rows = [{**_row(box, tenant_id, s), "retired_at": None} for s in (old, new)]

    def call(secrets: list[str], **changed: str) -> Call:
        headers = signature_headers(secrets, message_id="m", timestamp=int(time.time()), body=BODY)
        lowered = {k.lower(): v for k, v in {**headers, **changed}.items()}
        return Call("/cb", lowered, {}, 0.0, raw=BODY, received_at=time.time())

    assert verify_call(call([old, new]), rows, box) is None
    assert "refused" in (verify_call(call([stranger]), rows, box) or "")
    assert "refused" in (verify_call(call([new]), rows, box) or "")  # the old one is active too
    forged_legacy = call([old, new], **{"X-AWFDRS-Signature": "sha256=00"})
    assert "X-AWFDRS-Signature" in (verify_call(forged_legacy, rows, box) or "")
    retired = [{**rows[0], "retired_at": datetime.now(UTC) - timedelta(seconds=30)}, rows[1]]
    assert verify_call(call([new]), retired, box) is None
