"""Admin bodies: tenants and their API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.schemas.common import StrictBody

TENANT_NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,199}$"


class TenantCreate(StrictBody):
    """A new tenant; its first key has the `operator` scope unless said otherwise."""

    name: str = Field(pattern=TENANT_NAME, examples=["acme"])
    ingest_rate_per_s: int = Field(default=5000, ge=1, le=1_000_000)
    key_scope: Literal["ingest", "operator"] = "operator"


class TenantUpdate(StrictBody):
    """Fields an admin may change; omitted fields stay as they are."""

    name: str | None = Field(default=None, pattern=TENANT_NAME)
    active: bool | None = None
    ingest_rate_per_s: int | None = Field(default=None, ge=1, le=1_000_000)
    max_open_incidents: int | None = Field(
        default=None, ge=1, le=10_000_000, description="Open incidents at once (null: default)"
    )
    max_new_incidents_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Incidents opened per minute"
    )
    max_concurrent_callbacks: int | None = Field(
        default=None, ge=1, le=100_000, description="Callbacks in flight at once"
    )


class TenantOut(BaseModel):
    """A tenant as admins see it (never its HMAC secret)."""

    id: uuid.UUID
    name: str
    active: bool
    ingest_rate_per_s: int
    max_open_incidents: int | None = None
    max_new_incidents_per_minute: int | None = None
    max_concurrent_callbacks: int | None = None
    created_at: datetime


class TenantCreated(TenantOut):
    """A new tenant with its first API key and signing secret, shown only in this response."""

    api_key: str
    signing_secret_id: uuid.UUID
    signing_secret: str = Field(
        description="`whsec_…`: verifies the Standard Webhooks `webhook-signature` header."
    )
    hmac_secret: str = Field(
        description="The same key as text: verifies X-AWFDRS-Signature, as before rotation."
    )


class SigningSecretOut(BaseModel):
    """A signing secret without its value."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    masked: str = Field(description="`••••` and the secret's last four characters.")
    active: bool
    created_at: datetime
    retired_at: datetime | None


class SigningSecretCreated(SigningSecretOut):
    """A new signing secret, with its value shown only in this response."""

    secret: str = Field(description="`whsec_…` for Standard Webhooks verification.")
    hmac_secret: str = Field(description="The same key as text, for X-AWFDRS-Signature.")


class ApiKeyCreate(StrictBody):
    """A new key for a tenant."""

    scope: Literal["ingest", "operator"]
    name: str = Field(default="", max_length=200)
    owner: str | None = Field(
        default=None,
        min_length=1,
        # `api-key:<owner>` must fit the 200-character actor columns (kill_switches.actor).
        max_length=190,
        description="Who the key belongs to (a name or email); audit rows name the key by it",
        examples=["alice@example.com"],
    )


class ApiKeyOut(BaseModel):
    """A key without its secret."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    scope: str
    name: str
    owner: str | None = None
    display_prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """A new key, with its plaintext shown only in this response."""

    api_key: str
