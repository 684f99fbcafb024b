"""`awfdrs secrets rotate`: every stored secret sealed again under the new AWFDRS_SECRET_KEY."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from api.services.responder_secrets import store_responder_secret
from api.services.tenants import create_tenant
from models.db import create_engine, create_session_factory
from models.registry import NamedEscalationPolicy, Workflow
from models.responder_webhook import ResponderSystem
from models.secret_box import SecretBox, SecretKeyError, parse_key
from models.stored_secrets import (
    ESCALATION_POLICIES,
    NAMED_ESCALATION_POLICIES,
    TENANT_ESCALATION_POLICIES,
    WEBHOOK_URLS,
    check_secret_key,
)
from settings import Settings

WEBHOOK = "https://hooks.example.com/services/T0KEN-rotate"
POLICY = '{"levels": [{"name": "l1", "ack_timeout_s": 60, "webhook": "workflow"}]}'


async def _seed(settings: Settings) -> None:
    """A tenant (its first secret, a PagerDuty secret) and a webhook, sealed under the key."""
    box = SecretBox.from_settings(settings)
    engine = create_engine(settings, pool_size=1)
    try:
        async with create_session_factory(engine)() as session:
            tenant = (await create_tenant(session=session, box=box, name="rotating")).tenant
            sealed = box.encrypt(WEBHOOK, context=WEBHOOK_URLS.context(tenant.id))
            context = TENANT_ESCALATION_POLICIES.context(tenant.id)
            tenant.escalation_policy = box.encrypt(POLICY, context=context)
            named = box.encrypt(POLICY, context=NAMED_ESCALATION_POLICIES.context(tenant.id))
            session.add(
                NamedEscalationPolicy(tenant_id=tenant.id, name="n", policy_encrypted=named)
            )
            session.add(
                Workflow(
                    tenant_id=tenant.id,
                    name="w",
                    callback_url="http://127.0.0.1:9/cb",
                    escalation_webhook_url=sealed,
                    escalation_policy=box.encrypt(
                        POLICY, context=ESCALATION_POLICIES.context(tenant.id)
                    ),
                )
            )
            await store_responder_secret(
                session=session,
                box=box,
                tenant_id=tenant.id,
                system=ResponderSystem.PAGERDUTY,
                given="pd-subscription-secret-rotate",
            )
            await session.commit()
    finally:
        await engine.dispose()


def _rotate(settings: Settings, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "AWFDRS_DATABASE_URL": settings.database_url, **env}
    return subprocess.run(
        [sys.executable, "-m", "cli", "secrets", "rotate"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _opens(settings: Settings, key: str) -> int:
    engine = create_engine(settings, pool_size=1)
    try:
        return await check_secret_key(engine, SecretBox(parse_key(key)))
    finally:
        await engine.dispose()


async def test_rotate_reseals_every_secret_under_the_new_key(isolated_settings: Settings) -> None:
    await _seed(isolated_settings)
    assert isolated_settings.secret_key is not None
    old = isolated_settings.secret_key.get_secret_value()
    new = base64.b64encode(os.urandom(32)).decode()

    refused = _rotate(isolated_settings, AWFDRS_SECRET_KEY=new)
    assert refused.returncode != 0
    assert "AWFDRS_SECRET_KEY: stored secrets are sealed under key id" in refused.stderr

    rotated = _rotate(isolated_settings, AWFDRS_SECRET_KEY=new, AWFDRS_SECRET_KEYS_PREVIOUS=old)
    assert rotated.returncode == 0, rotated.stderr
    new_id = parse_key(new).key_id
    assert rotated.stdout.splitlines() == [
        f"signing_secrets.secret_encrypted: 1 re-encrypted under key id {new_id}",
        f"workflows.escalation_webhook_url: 1 re-encrypted under key id {new_id}",
        f"responder_secrets.secret_encrypted: 1 re-encrypted under key id {new_id}",
        f"workflows.escalation_policy: 1 re-encrypted under key id {new_id}",
        f"tenants.escalation_policy: 1 re-encrypted under key id {new_id}",
        f"escalation_policies.policy_encrypted: 1 re-encrypted under key id {new_id}",
    ]
    assert await _opens(isolated_settings, new) == 6
    with pytest.raises(SecretKeyError, match="AWFDRS_SECRET_KEY"):
        await _opens(isolated_settings, old)  # the old key may now be dropped
    again = _rotate(isolated_settings, AWFDRS_SECRET_KEY=new)
    assert "1 re-encrypted" not in again.stdout and again.returncode == 0
    # The rotated webhook still opens to the URL registered.
    rotating = isolated_settings.model_copy(update={"secret_key": SecretStr(new)})
    engine = create_engine(rotating, pool_size=1)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT tenant_id, escalation_webhook_url FROM workflows"))
            ).one()
    finally:
        await engine.dispose()
    box = SecretBox.from_settings(rotating)
    assert box.decrypt(row[1], context=WEBHOOK_URLS.context(row[0])) == WEBHOOK
