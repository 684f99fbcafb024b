"""OIDC/JWT bearer tokens: signature against the issuer's JWKS, claims, tenant and scope."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import Any

import httpx
import jwt
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.errors import Forbidden, ServiceUnavailable, Unauthorized
from api.principals import Principal, PrincipalCache, Scope
from settings import Settings

# Asymmetric algorithms only: `none` and HS256 (a shared secret anyone holding the JWKS could
# forge with) are refused before any key is looked at.
ALGORITHMS = ("RS256", "ES256")
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
# `jwt:<sub>` must fit the 200-character actor columns (kill_switches.actor).
MAX_SUBJECT = 190
JWKS_TIMEOUT_S = 5.0
# Keys are re-read at least this often even when every kid is known, so a revoked key goes.
JWKS_MAX_AGE_S = 3600.0
SCOPES: tuple[Scope, ...] = ("operator", "ingest")  # the first a token holds wins
_TENANT_BY_ID = text("SELECT id, active, ingest_rate_per_s FROM tenants WHERE id = :id")
_TENANT_BY_NAME = text("SELECT id, active, ingest_rate_per_s FROM tenants WHERE name = :name")


def looks_like_jwt(token: str) -> bool:
    """Tell a compact JWS (`eyJ….….…`) from an API key; such a token is never looked up as a key."""
    return token.startswith("eyJ") and token.count(".") == 2


class JwksCache:
    """The issuer's signing keys by kid, re-read on an unknown kid at most every `refresh_s`."""

    def __init__(self, url: str, *, refresh_s: float) -> None:
        self._url = url
        self._refresh_s = refresh_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key_for(self, kid: str) -> jwt.PyJWK:
        """Return the key with this kid, refreshing the set once if it is unknown or old."""
        key = self._keys.get(kid)
        if key is not None and not self._stale(JWKS_MAX_AGE_S):
            return key
        async with self._lock:
            wanted = kid not in self._keys or self._stale(JWKS_MAX_AGE_S)
            if wanted and self._stale(self._refresh_s):
                try:
                    await self._fetch()
                except ServiceUnavailable:
                    if kid not in self._keys:  # a known key outlives an issuer outage
                        raise
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized(f"the token's key id {kid!r} is not in the issuer's JWKS")
        return key

    def _stale(self, age_s: float) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= age_s

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()  # failures count too: no refresh storm
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_S) as client:
                response = await client.get(self._url)
                response.raise_for_status()
            document = response.json()
            if not isinstance(document, dict):
                raise ValueError("the JWKS is not a JSON object")
            keys = jwt.PyJWKSet.from_dict(document).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            raise ServiceUnavailable(
                f"the issuer's JWKS could not be read: {exc}", dependency="oidc"
            ) from None
        self._keys = {key.key_id: key for key in keys if key.key_id}


class OidcVerifier:
    """Turn a bearer JWT into a principal: signature, `exp`/`nbf`/`aud`/`iss`, tenant, scope."""

    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_enabled:
            raise ValueError("OIDC is not configured")
        self._issuer = str(settings.oidc_issuer)
        self._audience = str(settings.oidc_audience)
        self._tenant_claim = settings.oidc_tenant_claim
        self._scope_claim = settings.oidc_scope_claim
        self._leeway_s = settings.oidc_leeway_s
        self.jwks = JwksCache(str(settings.oidc_jwks_url), refresh_s=settings.oidc_jwks_refresh_s)

    async def claims(self, token: str) -> dict[str, Any]:
        """Return the verified claims; 401 naming what is wrong otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed bearer token: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise Unauthorized(f"token algorithm {alg!r} is not accepted (only RS256, ES256)")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the token has no key id (kid)")
        key = await self.jwks.key_for(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid bearer token: {exc}") from None
        return claims

    async def principal(
        self, token: str, *, cache: PrincipalCache, engine: AsyncEngine
    ) -> Principal:
        """Verify the token and map its claims to a tenant and a scope."""
        claims = await self.claims(token)
        if not 0 < len(str(claims["sub"])) <= MAX_SUBJECT:
            raise Unauthorized(f"the token's sub must be 1 to {MAX_SUBJECT} characters")
        scope = self._scope(claims)
        tenant = await _tenant(str(claims.get(self._tenant_claim, "")), cache, engine)
        if tenant is None:
            raise Unauthorized(f"the token's {self._tenant_claim!r} claim names no tenant")
        return replace(tenant, scope=scope, subject=str(claims["sub"]))

    def _scope(self, claims: dict[str, Any]) -> Scope:
        granted = claims.get(self._scope_claim, "")
        words = granted.split() if isinstance(granted, str) else [str(word) for word in granted]
        for scope in SCOPES:
            if scope in words or f"awfdrs:{scope}" in words:
                return scope
        claim = self._scope_claim
        raise Forbidden(f"the token's {claim!r} claim grants neither operator nor ingest")


async def _tenant(name_or_id: str, cache: PrincipalCache, engine: AsyncEngine) -> Principal | None:
    """The tenant a claim names (by id or by name), as a scope-less principal; cached."""
    if not name_or_id:
        return None
    hit, found = cache.get(f"oidc-tenant:{name_or_id}")
    if hit:
        return found
    params: dict[str, object]
    try:
        query, params = _TENANT_BY_ID, {"id": uuid.UUID(name_or_id)}
    except ValueError:
        query, params = _TENANT_BY_NAME, {"name": name_or_id}
    async with engine.connect() as conn:
        row = (await conn.execute(query, params)).mappings().first()
    found = None
    if row is not None:
        found = Principal(
            tenant_id=row["id"],
            scope="ingest",
            tenant_active=row["active"],
            ingest_rate_per_s=row["ingest_rate_per_s"],
        )
    cache.put(f"oidc-tenant:{name_or_id}", found)
    return found
