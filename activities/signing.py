"""Standard Webhooks signatures on every outbound request, under the tenant's active secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from models.secret_box import SecretBox
from models.signing import key_of
from models.stored_secrets import SIGNING_SECRETS

# Oldest first: the compatibility header uses the secret receivers have held the longest.
_ACTIVE = text("""
SELECT secret_encrypted FROM signing_secrets
WHERE tenant_id = :tenant_id AND retired_at IS NULL
ORDER BY created_at, id
""")


class NoSigningSecret(RuntimeError):
    """The tenant has no active signing secret, so nothing may be sent on its behalf."""


def standard_signature(key: bytes, *, message_id: str, timestamp: int, body: bytes) -> str:
    """Return `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(
    secrets: Sequence[str], *, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Return the Standard Webhooks headers (one `v1` per secret) and `X-AWFDRS-Signature`."""
    if not secrets:
        raise NoSigningSecret("no active signing secret: refusing to send unsigned")
    keys = [key_of(secret) for secret in secrets]
    signatures = " ".join(
        standard_signature(key, message_id=message_id, timestamp=timestamp, body=body)
        for key in keys
    )
    legacy = hmac.new(keys[0], body, hashlib.sha256).hexdigest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
        "X-AWFDRS-Signature": f"sha256={legacy}",
    }


class WebhookSigner:
    """Signs with the secrets active when the request leaves (read then, never cached)."""

    def __init__(
        self, *, engine: AsyncEngine, box: SecretBox, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine = engine
        self._box = box
        self._clock = clock

    async def active_secrets(self, tenant_id: str) -> list[str]:
        """Return the tenant's active `whsec_` secrets, oldest first."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_ACTIVE, {"tenant_id": uuid.UUID(tenant_id)})).all()
        context = SIGNING_SECRETS.context(tenant_id)
        return [self._box.decrypt(row.secret_encrypted, context=context) for row in rows]

    async def headers(self, tenant_id: str, *, message_id: str, body: bytes) -> dict[str, str]:
        """Return the signature headers of one request; `message_id` is its idempotency key."""
        secrets = await self.active_secrets(tenant_id)
        timestamp = int(self._clock())
        return signature_headers(secrets, message_id=message_id, timestamp=timestamp, body=body)
