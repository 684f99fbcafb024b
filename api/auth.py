"""Bearer-key authentication, scopes, and the admin token; the tenant comes from the key only."""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.deps import SettingsDep
from api.errors import Forbidden, Unauthorized
from api.services.tenants import KEY_PREFIX, hash_api_key
from observability import tenant_id_var

Scope = Literal["ingest", "operator"]
_LOOKUP = text(
    """SELECT k.id AS key_id, k.tenant_id, k.scope, t.active AS tenant_active,
              t.ingest_rate_per_s
       FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
       WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL"""
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, through one of its keys, with one scope."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID
    scope: Scope
    tenant_active: bool
    ingest_rate_per_s: int


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
        if len(self._entries) >= 10_000:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self._ttl_s, principal)

    def clear(self) -> None:
        """Forget everything (after a key is revoked or a tenant changes)."""
        self._entries.clear()


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <api key>'")
    return token.strip()


async def authenticate(request: Request) -> Principal:
    """Resolve the bearer key to its tenant; 401 unknown or revoked, 403 inactive tenant."""
    return await principal_for_key(request, _bearer(request))


async def principal_for_key(request: Request, token: str) -> Principal:
    """Resolve an API key (from a header or, for integrations, the body) to its tenant."""
    if not token.startswith(KEY_PREFIX):
        raise Unauthorized("the credential is not an AWFDRS API key")
    key_hash = hash_api_key(token)
    cache: PrincipalCache = request.app.state.principal_cache
    hit, principal = cache.get(key_hash)
    if not hit:
        engine: AsyncEngine = request.app.state.engine
        async with engine.connect() as conn:
            row = (await conn.execute(_LOOKUP, {"key_hash": key_hash})).mappings().first()
        principal = Principal(**row) if row else None
        cache.put(key_hash, principal)
    if principal is None:
        raise Unauthorized("unknown or revoked API key")
    tenant_id_var.set(str(principal.tenant_id))
    if not principal.tenant_active:
        raise Forbidden("this tenant is deactivated")
    return principal


async def require_operator(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Allow only keys with the `operator` scope."""
    if principal.scope != "operator":
        raise Forbidden("this key has the 'ingest' scope; reading and control need 'operator'")
    return principal


async def require_admin(request: Request, settings: SettingsDep) -> None:
    """Allow only the admin token (constant-time comparison)."""
    token = _bearer(request)
    if settings.admin_token is None:
        raise Forbidden("admin routes are disabled: AWFDRS_ADMIN_TOKEN is not set")
    expected = settings.admin_token.get_secret_value()
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("admin routes need AWFDRS_ADMIN_TOKEN")


IngestPrincipal = Annotated[Principal, Depends(authenticate)]
OperatorPrincipal = Annotated[Principal, Depends(require_operator)]
AdminOnly = Depends(require_admin)
