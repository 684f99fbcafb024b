"""Responder secrets: PagerDuty signing secrets and Opsgenie tokens, sealed, several at once."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import NotFound
from api.validation import invalid
from models.responder_webhook import ResponderSecret, ResponderSystem
from models.schemas.common import FieldError
from models.schemas.responders import ResponderSecretCreated, ResponderSecretOut
from models.secret_box import SecretBox, mask_secret
from models.stored_secrets import RESPONDER_SECRETS

GENERATED_TOKEN_BYTES = 32
# The routes of api/routes/responder_webhooks.py, under the API prefix.
WEBHOOK_PATH = "/api/v1/integrations/{system}/webhooks/{tenant_id}"


def responder_secret_out(row: ResponderSecret) -> ResponderSecretOut:
    """Render a secret by its last four characters only."""
    return ResponderSecretOut(
        id=row.id,
        tenant_id=row.tenant_id,
        system=ResponderSystem(row.system).value,
        webhook_path=WEBHOOK_PATH.format(system=row.system, tenant_id=row.tenant_id),
        masked=mask_secret(row.last4),
        active=row.retired_at is None,
        created_at=row.created_at,
        retired_at=row.retired_at,
    )


def _secret_to_store(system: ResponderSystem, given: str | None) -> tuple[str, bool]:
    """Return the secret and whether AWFDRS generated it; PagerDuty's comes from PagerDuty."""
    if given is not None:
        return given, False
    if system == ResponderSystem.PAGERDUTY:
        message = "PagerDuty generates the signing secret: send the one it shows"
        raise invalid([FieldError(loc=["body", "secret"], msg=message, type="missing")])
    return secrets.token_urlsafe(GENERATED_TOKEN_BYTES), True


async def store_responder_secret(
    *,
    session: AsyncSession,
    box: SecretBox,
    tenant_id: uuid.UUID,
    system: ResponderSystem,
    given: str | None,
) -> ResponderSecretCreated:
    """Seal and store a secret (accepted from the next request on); a generated one is shown."""
    secret, generated = _secret_to_store(system, given)
    row = ResponderSecret(
        tenant_id=tenant_id,
        system=system.value,
        secret_encrypted=box.encrypt(secret, context=RESPONDER_SECRETS.context(tenant_id)),
        last4=secret[-4:],
    )
    session.add(row)
    await session.flush()
    rendered = responder_secret_out(row).model_dump()
    return ResponderSecretCreated(**rendered, generated_token=secret if generated else None)


async def list_responder_secrets(
    *, session: AsyncSession, tenant_id: uuid.UUID, system: ResponderSystem
) -> list[ResponderSecretOut]:
    """Return the tenant's secrets for `system`, oldest first, retired ones included."""
    rows = await session.exec(
        select(ResponderSecret)
        .where(ResponderSecret.tenant_id == tenant_id, ResponderSecret.system == system.value)
        .order_by(col(ResponderSecret.created_at), col(ResponderSecret.id))
    )
    return [responder_secret_out(row) for row in rows]


async def retire_responder_secret(
    *, session: AsyncSession, tenant_id: uuid.UUID, system: ResponderSystem, secret_id: uuid.UUID
) -> None:
    """Retire a secret (kept for audit): webhooks signed with it are refused from now on."""
    row = await session.get(ResponderSecret, secret_id)
    if row is None or row.tenant_id != tenant_id or row.system != system.value:
        raise NotFound(f"{system.value} secret {secret_id} not found")
    if row.retired_at is None:
        row.retired_at = datetime.now(UTC)
        await session.commit()


async def active_secrets(
    *, session: AsyncSession, box: SecretBox, tenant_id: uuid.UUID, system: ResponderSystem
) -> list[str]:
    """Return the plaintext of every active secret the tenant holds for `system`."""
    rows = await session.exec(
        select(ResponderSecret.secret_encrypted).where(
            ResponderSecret.tenant_id == tenant_id,
            ResponderSecret.system == system.value,
            col(ResponderSecret.retired_at).is_(None),
        )
    )
    context = RESPONDER_SECRETS.context(tenant_id)
    return [box.decrypt(sealed, context=context) for sealed in rows]
