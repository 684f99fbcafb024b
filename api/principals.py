"""Who is calling: the principal an API key or OIDC token stands for, and a lookup cache."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Scope = Literal["ingest", "operator"]
_LOOKUP = text(
    """SELECT k.id AS key_id, k.tenant_id, k.scope, t.active AS tenant_active,
              t.ingest_rate_per_s, k.owner
       FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
       WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL"""
)
MAX_CACHED = 10_000


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, through one of its keys or an OIDC token, with one scope."""

    tenant_id: uuid.UUID
    scope: Scope
    tenant_active: bool
    ingest_rate_per_s: int
    key_id: uuid.UUID | None = None  # None for an OIDC token
    owner: str | None = None  # the key's owner, when it was given one
    subject: str | None = None  # the token's `sub`, for an OIDC token

    @property
    def actor(self) -> str:
        """How audit rows and signals name this caller (see `actor_for`)."""
        return actor_for(self)


def actor_for(principal: Principal) -> str:
    """Name the acting principal from its credential: `jwt:<sub>` or `api-key:<owner or id>`.

    The one spelling every audit row uses; a caller's free text never replaces it.
    """
    if principal.subject is not None:
        return f"jwt:{principal.subject}"
    return f"api-key:{principal.owner or principal.key_id}"


class PrincipalCache:
    """A short-lived cache of key lookups; admin changes invalidate it at once in-process."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def get(self, key_hash: str) -> tuple[bool, Principal | None]:
        """Return (hit, principal); a cached miss is a hit with None."""
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key_hash: str, principal: Principal | None) -> None:
        """Remember a lookup for the TTL (bounded size: the cache is cleared when full)."""
        if self._ttl_s <= 0:
            return
        if len(self._entries) >= MAX_CACHED:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self._ttl_s, principal)

    def clear(self) -> None:
        """Forget everything (after a key is revoked or a tenant changes)."""
        self._entries.clear()


async def lookup_principal(engine: AsyncEngine, key_hash: str) -> Principal | None:
    """Read the active key with this hash and its tenant; None when there is none."""
    async with engine.connect() as conn:
        row = (await conn.execute(_LOOKUP, {"key_hash": key_hash})).mappings().first()
    return Principal(**row) if row else None
