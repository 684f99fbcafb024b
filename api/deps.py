"""Typed dependencies reading the clients the lifespan put on `app.state`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from models.db import SessionFactory
from settings import Settings


async def get_settings(request: Request) -> Settings:
    """Return the app's settings."""
    settings: Settings = request.app.state.settings
    return settings


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


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
SessionFactoryDep = Annotated[SessionFactory, Depends(get_session_factory)]
RedisDep = Annotated[Redis, Depends(get_redis)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
