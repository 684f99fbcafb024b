"""Signed, bounded outbound HTTP shared by callbacks and escalation webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

MAX_RESPONSE_BYTES = 64 * 1024
HEARTBEAT_EVERY_S = 1.0
SECRET_TTL_S = 60.0


@dataclass(frozen=True)
class HttpResult:
    """What came back, or why nothing did."""

    status: int | None
    body: str
    error: str | None = None
    retry_after_s: float | None = None


def sign(body: bytes, secret: str) -> str:
    """Return the `X-AWFDRS-Signature` header value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def canonical_json(document: dict[str, Any]) -> bytes:
    """Serialise deterministically so the signature is reproducible by the receiver."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def host_allowed(url: str, allowed: list[str]) -> bool:
    """Check the URL's scheme and host against the allow-list (exact or `*.suffix`)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"http", "https"} or not host:
        return False
    return any(host == e or (e.startswith("*.") and host.endswith(e[1:])) for e in allowed)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class TenantSecrets:
    """Reads a tenant's HMAC secret on demand (never passed through workflow history)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._cache: dict[str, tuple[float, str]] = {}

    async def get(self, tenant_id: str) -> str:
        """Return the secret, cached for a minute."""
        cached = self._cache.get(tenant_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self._engine.connect() as conn:
            secret = (
                await conn.execute(
                    text("SELECT hmac_secret FROM tenants WHERE id = :id"),
                    {"id": uuid.UUID(tenant_id)},
                )
            ).scalar_one()
        self._cache[tenant_id] = (time.monotonic() + SECRET_TTL_S, secret)
        return str(secret)


async def post_signed(
    http: httpx.AsyncClient, url: str, body: bytes, *, headers: dict[str, str], timeout_s: float
) -> HttpResult:
    """POST without following redirects, reading at most 64 KiB, heartbeating while waiting."""
    request = asyncio.ensure_future(_post(http, url, body, headers, timeout_s))
    try:
        while True:
            done, _ = await asyncio.wait({request}, timeout=HEARTBEAT_EVERY_S)
            if done:
                return request.result()
            activity.heartbeat()
    finally:
        if not request.done():
            request.cancel()
            await asyncio.gather(request, return_exceptions=True)


async def _post(
    http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> HttpResult:
    try:
        async with http.stream(
            "POST", url, content=body, headers=headers, timeout=timeout_s, follow_redirects=False
        ) as response:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk[: MAX_RESPONSE_BYTES - size])
                size += len(chunk)
                if size >= MAX_RESPONSE_BYTES:
                    break
            text_body = b"".join(chunks).decode(errors="replace")
            return HttpResult(
                response.status_code,
                text_body,
                retry_after_s=_retry_after(response.headers.get("retry-after")),
            )
    except httpx.TimeoutException:
        return HttpResult(None, "", error=f"timed out after {timeout_s:g}s")
    except httpx.TransportError as exc:
        return HttpResult(None, "", error=f"{type(exc).__name__}: {exc}"[:300])
