"""Webhook signing secrets of tenants, sealed at rest; retired secrets stay for audit."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from models.base import created_at_field, id_field, timestamp_field

SECRET_PREFIX = "whsec_"


class SigningSecret(SQLModel, table=True):
    """One `whsec_` secret; every active one signs each outbound request of its tenant."""

    __tablename__: ClassVar[str] = "signing_secrets"
    __table_args__ = (Index("ix_signing_secrets_tenant_id_created_at", "tenant_id", "created_at"),)

    id: uuid.UUID = id_field()
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    # `v1:<key id>:<nonce>:<ciphertext>` under AWFDRS_SECRET_KEY; the plaintext is never stored.
    secret_encrypted: str = Field(sa_type=Text)
    # Shown in listings (`••••last4`) so operators can tell secrets apart.
    last4: str = Field(max_length=4)
    created_at: datetime = created_at_field()
    retired_at: datetime | None = timestamp_field()


def secret_for_key(key: bytes) -> str:
    """Return the Standard Webhooks form of a signing key: `whsec_` + base64."""
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def generate_secret() -> str:
    """Return a new secret whose key is 48 hex characters (192 random bits).

    A text key lets the same secret also serve `X-AWFDRS-Signature`, whose receivers key
    HMAC-SHA256 with the secret's text (`hmac_secret`), as they did before secrets rotated.
    """
    return secret_for_key(secrets.token_hex(24).encode("ascii"))


def key_of(secret: str) -> bytes:
    """Return the HMAC key of a `whsec_` secret (its base64 part, decoded)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def hmac_secret_of(secret: str) -> str:
    """Return the key as the text `X-AWFDRS-Signature` receivers hold (`hmac_secret`)."""
    return key_of(secret).decode("ascii")


def last4_of(secret: str) -> str:
    """Return the four characters listings show (base64 padding skipped)."""
    return secret.rstrip("=")[-4:]
