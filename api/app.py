"""`create_app()`: the API's composition root, owning every client through `lifespan`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.errors import install_error_handlers
from api.middleware import CorrelationIdMiddleware
from api.routes import health
from models.db import create_engine, create_session_factory
from settings import Settings, load_settings

API_PREFIX = "/api/v1"


def create_redis(settings: Settings) -> Redis:
    """Create the Redis client with short timeouts so an outage fails fast."""
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=10,
    )


async def connect_temporal(settings: Settings, *, lazy: bool) -> Client:
    """Connect to Temporal with the pydantic converter; `lazy` defers the first dial."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        lazy=lazy,
    )


def create_app(settings: Settings | None = None, *, temporal: Client | None = None) -> FastAPI:
    """Build the FastAPI app; `temporal` lets tests inject an existing client."""
    settings = settings or load_settings()
    if settings.env == "production":
        # Fail at startup, not at the first admin call, when production lacks its token.
        settings.require_admin_token()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        redis = create_redis(settings)
        app.state.settings = settings
        app.state.engine = engine
        app.state.session_factory = create_session_factory(engine)
        app.state.redis = redis
        # Lazy: the API must start (and accept events) while Temporal is still down.
        app.state.temporal = temporal or await connect_temporal(settings, lazy=True)
        try:
            yield
        finally:
            await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="AWFDRS",
        summary="Autonomous Workflow Failure Detection & Recovery System",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(CorrelationIdMiddleware)
    install_error_handlers(app)
    app.include_router(health.router, prefix=API_PREFIX)
    return app
