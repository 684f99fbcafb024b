"""Signing secrets: issue (shown once), list masked, retire (never the last active one)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import Conflict, NotFound
from models.schemas.tenants import SigningSecretCreated, SigningSecretOut
from models.secret_box import SecretBox, mask_secret
from models.signing import SigningSecret, generate_secret, hmac_secret_of, last4_of
from models.stored_secrets import SIGNING_SECRETS


def signing_secret_out(row: SigningSecret) -> SigningSecretOut:
    """Render a secret by its last four characters only."""
    return SigningSecretOut(
        id=row.id,
        tenant_id=row.tenant_id,
        masked=mask_secret(row.last4),
        active=row.retired_at is None,
        created_at=row.created_at,
        retired_at=row.retired_at,
    )


async def issue_signing_secret(
    *, session: AsyncSession, box: SecretBox, tenant_id: uuid.UUID
) -> SigningSecretCreated:
    """Store a new secret sealed (it signs from the next request on); return it once."""
    secret = generate_secret()
    row = SigningSecret(
        tenant_id=tenant_id,
        secret_encrypted=box.encrypt(secret, context=SIGNING_SECRETS.context(tenant_id)),
        last4=last4_of(secret),
    )
    session.add(row)
    await session.flush()
    rendered = signing_secret_out(row).model_dump()
    return SigningSecretCreated(**rendered, secret=secret, hmac_secret=hmac_secret_of(secret))


async def list_signing_secrets(
    *, session: AsyncSession, tenant_id: uuid.UUID
) -> list[SigningSecretOut]:
    """Return the tenant's secrets, oldest first, retired ones included."""
    rows = await session.exec(
        select(SigningSecret)
        .where(SigningSecret.tenant_id == tenant_id)
        .order_by(col(SigningSecret.created_at), col(SigningSecret.id))
    )
    return [signing_secret_out(row) for row in rows]


async def retire_signing_secret(
    *, session: AsyncSession, tenant_id: uuid.UUID, secret_id: uuid.UUID
) -> None:
    """Retire a secret (kept for audit); 409 when it is the tenant's last active one."""
    # Locking every active secret of the tenant serialises concurrent retirements, so two
    # of them can never leave the tenant with none.
    active = await session.exec(
        select(SigningSecret)
        .where(SigningSecret.tenant_id == tenant_id, col(SigningSecret.retired_at).is_(None))
        .with_for_update()
    )
    rows = {row.id: row for row in active}
    if secret_id not in rows:
        retired = await session.get(SigningSecret, secret_id)
        if retired is None or retired.tenant_id != tenant_id:
            raise NotFound(f"signing secret {secret_id} not found")
        return  # already retired
    if len(rows) == 1:
        raise Conflict("the tenant's last active signing secret cannot be retired; add one first")
    rows[secret_id].retired_at = datetime.now(UTC)
    await session.commit()
