"""Tenants and API keys: creation (with the first signing secret), key issue, lookup."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import NotFound
from api.services.signing_secrets import issue_signing_secret
from models.schemas.tenants import SigningSecretCreated
from models.secret_box import SecretBox
from models.tenant import ApiKey, Tenant

KEY_PREFIX = "awf_"
KeyScope = Literal["ingest", "operator"]


def generate_api_key() -> str:
    """Return a new random key (256 bits) with the `awf_` prefix scanners recognise."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """Return the SHA-256 hex digest under which a key is stored and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


async def issue_api_key(
    *,
    session: AsyncSession,
    tenant_id: uuid.UUID,
    scope: KeyScope,
    name: str = "",
    owner: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key's hash and return the row with the plaintext (shown once)."""
    plaintext = generate_api_key()
    key = ApiKey(
        tenant_id=tenant_id,
        key_hash=hash_api_key(plaintext),
        display_prefix=plaintext[:12],
        scope=scope,
        name=name,
        owner=owner,
    )
    session.add(key)
    await session.flush()
    return key, plaintext


@dataclass(frozen=True)
class NewTenant:
    """A created tenant with the plaintexts shown once: its first key and signing secret."""

    tenant: Tenant
    api_key: str
    signing_secret: SigningSecretCreated


async def create_tenant(
    *,
    session: AsyncSession,
    box: SecretBox,
    name: str,
    ingest_rate_per_s: int = 5000,
    key_scope: KeyScope = "operator",
) -> NewTenant:
    """Create a tenant with its first API key and its first signing secret (sealed)."""
    tenant = Tenant(name=name, ingest_rate_per_s=ingest_rate_per_s)
    session.add(tenant)
    await session.flush()
    _, plaintext = await issue_api_key(
        session=session, tenant_id=tenant.id, scope=key_scope, name="initial"
    )
    secret = await issue_signing_secret(session=session, box=box, tenant_id=tenant.id)
    return NewTenant(tenant, plaintext, secret)


async def get_tenant_by_name(*, session: AsyncSession, name: str) -> Tenant | None:
    """Return the tenant called `name`, if any."""
    result = await session.exec(select(Tenant).where(Tenant.name == name))
    return result.first()


async def get_tenant_or_raise(*, session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    """Return the tenant or raise NotFound."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id} not found")
    return tenant
