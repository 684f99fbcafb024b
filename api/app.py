"""`create_app()`: the API's composition root, owning every client through `lifespan`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.body import require_json_body
from api.dispatcher import OutboxDispatcher
from api.dispatcher_health import supervise
from api.dispatcher_link import RemoteWake
from api.errors import install_error_handlers
from api.intake import Intake
from api.intake_route import IntakeApi
from api.limits import BodyLimitMiddleware, request_body_limit
from api.metrics import ApiMetrics
from api.middleware import CorrelationIdMiddleware
from api.oidc import OidcVerifier
from api.openapi import install_openapi
from api.principals import PrincipalCache
from api.routes import (
    dead_letters,
    egress,
    events,
    health,
    incidents,
    integrations,
    maintenance,
    metrics,
    noise,
    reports,
    responder_webhooks,
    responders,
    safety,
    signing_secrets,
    tenants,
    workflows,
)
from api.routes.docs import install_docs
from api.services.fairness import Caps
from api.services.workflow_states import WorkflowStateCache
from api.validation import reject_unstorable_parameters
from clients import connect_temporal, create_engine, create_redis
from models.db import create_session_factory
from models.egress import StoredEgressLists
from models.secret_box import SecretBox
from models.stored_secrets import check_secret_key_at_startup
from rules.egress import EgressGuard
from rules.policy import Policies, load_policies
from rules.rate_limit import RateLimiter
from settings import Settings, load_settings
from tracing import instrument_app, start_tracing

API_PREFIX = "/api/v1"


async def end_open_transaction(conn: asyncpg.Connection) -> None:
    """Release hook of the intake pool: roll back an aborted transaction, nothing else."""
    # The intake path never LISTENs, SETs or takes advisory locks, so the stock reset
    # (a multi-statement round trip on every release) has nothing to undo but this.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_intake_pool(settings: Settings) -> asyncpg.Pool:
    """Create the asyncpg pool of the ingest hot path; no connection is opened eagerly."""
    pool = await asyncpg.create_pool(
        settings.plain_database_url,
        min_size=0,
        max_size=settings.db_pool_size,
        timeout=5,
        command_timeout=settings.db_statement_timeout_ms / 1000,
        server_settings={"statement_timeout": str(settings.db_statement_timeout_ms)},
        reset=end_open_transaction,
    )
    assert pool is not None
    return pool


def tenant_caps(settings: Settings) -> Caps:
    """The per-tenant incident caps, as intake and the dispatcher apply them."""
    return Caps(
        max_open_incidents=settings.tenant_max_open_incidents,
        max_new_incidents_per_minute=settings.tenant_max_new_incidents_per_minute,
    )


def build_dispatcher(
    settings: Settings, *, engine: AsyncEngine, temporal: Client, caps: Caps, metrics: ApiMetrics
) -> OutboxDispatcher:
    """Build the outbox dispatcher (run inline by the API, or by `api.dispatcher_main`)."""
    dispatcher = OutboxDispatcher(
        engine=engine,
        temporal=temporal,
        task_queue=settings.task_queue,
        batch_size=settings.dispatcher_batch_size,
        poll_interval_s=settings.dispatcher_poll_interval_s,
        linger_s=settings.dispatcher_linger_s,
        max_failures=settings.dispatcher_max_failures,
        caps=caps,
        metrics=metrics,
    )
    dispatcher.health.enabled = settings.dispatcher_mode != "off"
    return dispatcher


async def guard_request(request: Request) -> None:
    """Refuse a body that is not JSON (415), then parameters that cannot be stored (422)."""
    # One dependency rather than two: FastAPI's cost is per dependency and per request.
    await require_json_body(request)
    await reject_unstorable_parameters(request)


@asynccontextmanager
async def open_state(
    app: FastAPI,
    settings: Settings,
    *,
    box: SecretBox,
    policies: Policies,
    temporal: Client | None,
) -> AsyncIterator[OutboxDispatcher]:
    """Build every client and service onto `app.state` (read through `api/deps.py`); close them."""
    engine, redis = create_engine(settings), create_redis(settings)
    # Lazy: the API must start (and accept events) while Temporal is still down.
    client = temporal or await connect_temporal(settings, lazy=True)
    metrics, caps = ApiMetrics(), tenant_caps(settings)
    if settings.dispatcher_mode != "inline":
        # Never set here: the dispatcher process exports it, and a 0 would read as stalled.
        metrics.registry.unregister(metrics.dispatcher_last_success)
    dispatcher = build_dispatcher(
        settings, engine=engine, temporal=client, caps=caps, metrics=metrics
    )
    pool = await create_intake_pool(settings)
    state = app.state
    state.settings, state.policies, state.secret_box = settings, policies, box
    state.engine, state.session_factory = engine, create_session_factory(engine)
    state.redis, state.temporal, state.metrics = redis, client, metrics
    state.dispatcher = dispatcher
    state.principal_cache = PrincipalCache(settings.auth_cache_ttl_s)
    state.oidc = OidcVerifier(settings) if settings.oidc_enabled else None
    # Uncached tenant lists: an admin's change applies to the very next registration.
    state.egress_guard = EgressGuard.from_settings(
        settings, tenant_lists=StoredEgressLists(engine, ttl_s=0)
    )
    state.intake = Intake(
        pool=pool,
        limiter=RateLimiter(redis),
        catalog=policies.error_codes,
        workflows=WorkflowStateCache(settings.registry_cache_ttl_s),
        on_stored=(
            RemoteWake(redis, every_s=settings.dispatcher_linger_s)
            if settings.dispatcher_mode == "process"
            else dispatcher.wake
        ),
        caps=caps,
        metrics=metrics,
    )
    try:
        yield dispatcher
    finally:
        await redis.aclose()
        await pool.close()
        await engine.dispose()


@asynccontextmanager
async def running_dispatcher(dispatcher: OutboxDispatcher, *, enabled: bool) -> AsyncIterator[None]:
    """Run the supervised dispatcher task while the app serves (when enabled)."""
    if not enabled:
        yield
        return
    task = asyncio.create_task(
        supervise("outbox dispatcher", dispatcher.run, on_restart=dispatcher.restarted)
    )
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _include_routers(app: FastAPI, settings: Settings) -> None:
    if settings.metrics_port is None:  # otherwise `python -m api` serves it on its own port
        app.include_router(metrics.router)
    for router in (
        health.router,
        events.router,
        incidents.router,
        integrations.router,
        responder_webhooks.router,
        workflows.router,
        safety.router,
        maintenance.router,
        noise.router,
        tenants.router,
        signing_secrets.router,
        egress.router,
        dead_letters.router,
        reports.router,
        responders.router,
    ):
        app.include_router(router, prefix=API_PREFIX)


def create_app(settings: Settings | None = None, *, temporal: Client | None = None) -> FastAPI:
    """Build the FastAPI app; `temporal` lets tests inject an existing client."""
    settings = settings or load_settings()
    if settings.env == "production":
        # Fail at startup, not at the first admin call, when production lacks its token.
        settings.require_admin_token()
    box = SecretBox.from_settings(settings)  # every environment: names AWFDRS_SECRET_KEY
    policies = load_policies(settings.policy_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await check_secret_key_at_startup(settings, box)  # a wrong key stops the start
        async with (
            open_state(app, settings, box=box, policies=policies, temporal=temporal) as dispatcher,
            running_dispatcher(dispatcher, enabled=settings.dispatcher_mode == "inline"),
        ):
            yield

    tracing = start_tracing("awfdrs-api")  # OTEL_* variables; off by default
    app = IntakeApi(
        # Without tracing, FastAPI's own telemetry would look for providers on every request.
        telemetry=None if tracing else {"tracing": False, "metrics": False, "logs": False},
        title="AWFDRS",
        summary="Autonomous Workflow Failure Detection & Recovery System",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(guard_request)],
        # Served from packaged assets (api/routes/docs.py), not a CDN; ReDoc has no package.
        docs_url=None,
        redoc_url=None,
    )
    app.state.tracing = tracing  # read per request by api/routes/direct_route.py
    app.front_routes = events.front_routes(API_PREFIX)  # served by api/intake_route.py
    install_docs(app)
    # Inside the correlation middleware (so the 413 carries the id), before routing and auth.
    app.add_middleware(BodyLimitMiddleware, max_bytes=request_body_limit(settings))
    app.add_middleware(CorrelationIdMiddleware)
    install_error_handlers(app)
    _include_routers(app, settings)
    install_openapi(app)
    if tracing:
        instrument_app(app)
    return app
