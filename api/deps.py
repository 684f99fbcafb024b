"""Every FastAPI dependency of the API: typed aliases over what the lifespan put on `app.state`.

Routes and services name these aliases, never `request.app.state`, so the composition root
(`api/app.py`) is the one place that knows how the objects are built and stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.dispatcher import OutboxDispatcher
from api.intake import Intake
from api.metrics import ApiMetrics
from api.oidc import OidcVerifier
from api.principals import PrincipalCache
from models.db import SessionFactory
from models.secret_box import SecretBox
from rules.egress import EgressGuard
from rules.policy import Policies
from settings import Settings


async def get_settings(request: Request) -> Settings:
    """Return the app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> AsyncEngine:
    """Return the app's SQLAlchemy engine."""
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_session_factory(request: Request) -> SessionFactory:
    """Return the app's session factory."""
    factory: SessionFactory = request.app.state.session_factory
    return factory


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield one session per request, closed afterwards."""
    factory: SessionFactory = request.app.state.session_factory
    async with factory() as session:
        yield session


async def get_redis(request: Request) -> Redis:
    """Return the app's Redis client."""
    redis: Redis = request.app.state.redis
    return redis


async def get_temporal(request: Request) -> Client:
    """Return the app's (lazily connecting) Temporal client."""
    client: Client = request.app.state.temporal
    return client


async def get_intake(request: Request) -> Intake:
    """Return the event intake pipeline."""
    intake: Intake = request.app.state.intake
    return intake


async def get_dispatcher(request: Request) -> OutboxDispatcher:
    """Return this process's outbox dispatcher."""
    dispatcher: OutboxDispatcher = request.app.state.dispatcher
    return dispatcher


async def get_metrics(request: Request) -> ApiMetrics:
    """Return the API's Prometheus registry."""
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


async def get_policies(request: Request) -> Policies:
    """Return the policy files the API was started with."""
    policies: Policies = request.app.state.policies
    return policies


async def get_principal_cache(request: Request) -> PrincipalCache:
    """Return the cache of API-key lookups."""
    cache: PrincipalCache = request.app.state.principal_cache
    return cache


async def get_secret_box(request: Request) -> SecretBox:
    """Return the box sealing and opening stored secrets."""
    box: SecretBox = request.app.state.secret_box
    return box


async def get_egress_guard(request: Request) -> EgressGuard:
    """Return the egress guard registrations are vetted with."""
    guard: EgressGuard = request.app.state.egress_guard
    return guard


async def get_oidc(request: Request) -> OidcVerifier | None:
    """Return the OIDC token verifier, or None when only API keys are accepted."""
    verifier: OidcVerifier | None = request.app.state.oidc
    return verifier


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
SessionFactoryDep = Annotated[SessionFactory, Depends(get_session_factory)]
RedisDep = Annotated[Redis, Depends(get_redis)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
IntakeDep = Annotated[Intake, Depends(get_intake)]
DispatcherDep = Annotated[OutboxDispatcher, Depends(get_dispatcher)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
PolicyDep = Annotated[Policies, Depends(get_policies)]
PrincipalCacheDep = Annotated[PrincipalCache, Depends(get_principal_cache)]
SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
EgressGuardDep = Annotated[EgressGuard, Depends(get_egress_guard)]
OidcDep = Annotated[OidcVerifier | None, Depends(get_oidc)]
