"""`POST /events` (single and batch) served in front of FastAPI's middleware stack and router.

Per single event, the framework's layers (the router's match over every route, the error and
exception middlewares, three wrapped sends, the route's exit stacks) were about a fifth of the
API's CPU (docs/BENCHMARKS.md). `IntakeApi` serves the eligible intake requests itself, doing
in one layer what those layers do for them, with the same code where it can: the correlation
id, metrics and access log (api/middleware.py), the body limit (api/limits.py), the router's
scope entries, the app's own exception handlers, Starlette's error middleware, then the shortcut
the route itself calls (api/routes/direct_route.py). Every other request, and every request
while tracing is on, takes FastAPI's path; tests/api/test_ingest_shortcut.py holds the two
paths to the same answers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from api.limits import BodyLimitMiddleware, StreamGuard, declared_length, refuse_too_large
from api.middleware import HEADER, CorrelationIdMiddleware, incoming_id, record_request
from api.routes.direct_route import FrontRoute
from observability import correlation_id_var, tenant_id_var

log = logging.getLogger("awfdrs.limits")  # BodyLimitMiddleware's logger, for the same line
# The app's middlewares, outermost first, that the front path does the work of.
REPRODUCED = (CorrelationIdMiddleware, BodyLimitMiddleware)


class _Reply:
    """The send of one request: adds the correlation id, notes the status (as the middleware)."""

    __slots__ = ("_send", "correlation_id", "started", "status")

    def __init__(self, send: Send, correlation_id: str) -> None:
        self._send = send
        self.correlation_id = correlation_id
        self.started = False
        self.status = 500

    async def send(self, message: Message) -> None:
        """Pass a message on, stamping the correlation id on the response's start."""
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            MutableHeaders(scope=message)[HEADER] = self.correlation_id
        await self._send(message)


def _probe(path: str) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "root_path": "", "headers": []}


def _route_for(routes: list[BaseRoute], path: str) -> BaseRoute | None:
    """The route FastAPI's router hands `POST path` to: the first full match, looked for
    inside included routers (FastAPI keeps them whole) as they look for it themselves."""
    route = next((r for r in routes if r.matches(_probe(path))[0] == Match.FULL), None)
    # An included router picks among its own routes (recursively) with its `_match`.
    while route is not None and (select := getattr(route, "_match", None)) is not None:
        match, _, route, _ = select(_probe(path))
        if match != Match.FULL:
            return None
    return route


def _lookup(handlers: dict[Any, ExceptionHandler], exc: Exception) -> ExceptionHandler | None:
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


class FrontIntake:
    """Serves the eligible requests of an app's front routes; passes every other call on."""

    def __init__(
        self,
        app: FastAPI,
        fallback: ASGIApp,
        routes: dict[str, tuple[FrontRoute, BaseRoute]],
        max_bytes: int,
    ) -> None:
        self._app = app
        self.fallback = fallback
        self._routes = routes
        self._max_bytes = max_bytes
        # Split as Starlette's build_middleware_stack splits them: Exception and 500 go to
        # the error middleware, the rest to the exception middleware.
        outer: ExceptionHandler | None = None
        self._handlers: dict[Any, ExceptionHandler] = {}
        for key, value in app.exception_handlers.items():
            if key in (500, Exception):
                outer = value
            else:
                self._handlers[key] = value
        self._serve_guarded = ServerErrorMiddleware(self._serve, handler=outer, debug=app.debug)

    @property
    def paths(self) -> frozenset[str]:
        """The paths served here when a request is eligible."""
        return frozenset(self._routes)

    @classmethod
    def around(cls, app: FastAPI, stack: ASGIApp, fronts: tuple[FrontRoute, ...]) -> ASGIApp:
        """Put the front path around `stack`, unless the app has layers it does not reproduce."""
        layers: tuple[object, ...] = tuple(middleware.cls for middleware in app.user_middleware)
        if layers != REPRODUCED or app.root_path or getattr(app, "max_body_size", None):
            return stack
        routes = {}
        for front in fronts:
            route = _route_for(app.router.routes, front.path)
            if getattr(route, "endpoint", None) is front.endpoint:
                assert route is not None
                routes[front.path] = (front, route)
        max_bytes = app.user_middleware[1].kwargs["max_bytes"]
        assert isinstance(max_bytes, int)
        return cls(app, stack, routes, max_bytes) if routes else stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call: an eligible intake request here, anything else by FastAPI."""
        served = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if (
            served is None
            or scope["method"] != "POST"
            or scope.get("root_path")
            or self._app.state.tracing
            or not served[0].eligible(scope)
        ):
            await self.fallback(scope, receive, send)
            return
        await self._serve_guarded(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """CorrelationIdMiddleware's work around `_limited`."""
        reply = _Reply(send, incoming_id(scope))
        token = correlation_id_var.set(reply.correlation_id)
        tenant_token = tenant_id_var.set(None)
        started = time.perf_counter()
        try:
            await self._limited(scope, receive, reply)
        finally:
            record_request(scope, reply.status, time.perf_counter() - started)
            tenant_id_var.reset(tenant_token)
            correlation_id_var.reset(token)

    async def _limited(self, scope: Scope, receive: Receive, reply: _Reply) -> None:
        """BodyLimitMiddleware's work around `_routed`."""
        declared = declared_length(scope)
        if declared is not None and declared > self._max_bytes:
            detail = f"the body is {declared} bytes; the limit is {self._max_bytes}"
            await refuse_too_large(reply.send, detail)
            return
        guard = StreamGuard(receive, reply.send, self._max_bytes)
        try:
            await self._routed(scope, guard, reply)
        except Exception as exc:
            if not guard.refused:
                raise
            log.debug("request aborted after its 413: %s", type(exc).__name__)

    async def _routed(self, scope: Scope, guard: StreamGuard, reply: _Reply) -> None:
        """The router's scope entries, then the shortcut under the app's exception handlers."""
        front, route = self._routes[scope["path"]]
        scope["route"] = route  # what the metrics label the request by
        scope["endpoint"] = front.endpoint
        scope["path_params"] = {}
        request = Request(scope, guard.receive, guard.send)
        try:
            response = await front.shortcut(request)
            await response(scope, guard.receive, guard.send)
        except Exception as exc:
            handled = await self._handled(request, exc, started=reply.started)
            if handled is not None:
                await handled(scope, guard.receive, guard.send)
            exc.__traceback__ = None  # as Starlette: a reused exception would grow its traceback

    async def _handled(self, request: Request, exc: Exception, *, started: bool) -> Response | None:
        """The app's answer to `exc` (as Starlette's exception middleware), or `exc` raised."""
        handler = None
        if isinstance(exc, HTTPException):
            handler = self._handlers.get(exc.status_code)
        handler = handler or _lookup(self._handlers, exc)
        if handler is None:
            raise exc
        if started:
            raise RuntimeError("Caught handled exception, but response already started.") from exc
        # Typed for either connection kind; only HTTP requests come here.
        if is_async_callable(handler):
            response = await handler(request, exc)  # type: ignore[arg-type]
        else:
            response = await run_in_threadpool(handler, request, exc)
        return response


class IntakeApi(FastAPI):
    """FastAPI with its `front_routes` served in front of its middleware stack and router."""

    front_routes: tuple[FrontRoute, ...] = ()

    def build_middleware_stack(self) -> ASGIApp:
        """FastAPI's stack, behind the front path when the app allows it."""
        if getattr(self.state, "tracing", False):
            # Traced requests take FastAPI's path anyway, and OpenTelemetry's instrumentation
            # only wraps a stack whose outermost layer is Starlette's error middleware.
            return super().build_middleware_stack()
        return FrontIntake.around(self, super().build_middleware_stack(), self.front_routes)
