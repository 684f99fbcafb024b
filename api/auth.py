"""Bearer authentication (API keys, OIDC tokens), scopes and the admin token.

The tenant comes from the credential only: the key's row, or the token's tenant claim.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from api.deps import SettingsDep
from api.errors import Forbidden, Unauthorized
from api.oidc import OidcVerifier, looks_like_jwt
from api.principals import Principal, PrincipalCache, lookup_principal
from api.services.tenants import KEY_PREFIX, hash_api_key
from observability import tenant_id_var


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <api key>'")
    return token.strip()


async def authenticate(request: Request) -> Principal:
    """Resolve the bearer key or token to its tenant; 401 unknown or invalid, 403 inactive."""
    # The app's state read here, not through three sub-dependencies: this runs on every
    # authenticated request, and FastAPI's per-dependency cost is most of an ingest's overhead.
    state = request.app.state
    cache: PrincipalCache = state.principal_cache
    engine: AsyncEngine = state.engine
    oidc: OidcVerifier | None = state.oidc
    token = _bearer(request)
    if not looks_like_jwt(token):
        return await principal_for_key(token, cache=cache, engine=engine)
    if oidc is None:
        raise Unauthorized("bearer JWTs are not accepted: OIDC is not configured")
    principal = await oidc.principal(token, cache=cache, engine=engine)
    tenant_id_var.set(str(principal.tenant_id))
    if not principal.tenant_active:
        raise Forbidden("this tenant is deactivated")
    return principal


async def principal_for_key(token: str, *, cache: PrincipalCache, engine: AsyncEngine) -> Principal:
    """Resolve an API key (from a header or, for integrations, the body) to its tenant."""
    if not token.startswith(KEY_PREFIX):
        raise Unauthorized("the credential is not an AWFDRS API key")
    key_hash = hash_api_key(token)
    hit, principal = cache.get(key_hash)
    if not hit:
        principal = await lookup_principal(engine, key_hash)
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
        raise Forbidden("this credential has the 'ingest' scope; reading and control need operator")
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
