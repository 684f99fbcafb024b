"""Pure ASGI middleware: correlation ids and one access-log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability import correlation_id_var, tenant_id_var

HEADER = "x-correlation-id"
_HEADER_BYTES = HEADER.encode()
API_PREFIX = "/api/v1"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
log = logging.getLogger("awfdrs.access")


def incoming_id(scope: Scope) -> str:
    """Return the caller's valid `X-Correlation-ID`, or a new id."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER_BYTES:
            candidate = bytes(value).decode("latin-1")
            if _VALID_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def route_label(scope: Scope) -> str:
    """Return the matched route template (bounded cardinality), with the API prefix."""
    template = getattr(scope.get("route"), "path", None)
    if template is None:
        return "unmatched"
    # Routes of included routers report their path without the router's prefix.
    if scope["path"].startswith(API_PREFIX) and not template.startswith(API_PREFIX):
        return API_PREFIX + str(template)
    return str(template)


class CorrelationIdMiddleware:
    """Echo or mint `X-Correlation-ID`, expose it to logs, and log each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = incoming_id(scope)
        token = correlation_id_var.set(correlation_id)
        tenant_token = tenant_id_var.set(None)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = correlation_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record_request(scope, status, time.perf_counter() - started)
            tenant_id_var.reset(tenant_token)
            correlation_id_var.reset(token)


def record_request(scope: Scope, status: int, seconds: float) -> None:
    """Count the request in the app's metrics (when it has them) and log it."""
    # None until the lifespan has filled the state: such a request is logged, not counted.
    metrics = getattr(scope["app"].state, "metrics", None) if "app" in scope else None
    if metrics is not None:
        metrics.observe_request(route_label(scope), scope["method"], status, seconds)
    log.info(
        "request",
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        },
    )
