"""Async engine and session factory, built once per composition root."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from settings import Settings

SessionFactory = async_sessionmaker[AsyncSession]


def create_engine(settings: Settings) -> AsyncEngine:
    """Create the async engine with bounded pool and statement timeouts."""
    return create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args={
            "timeout": 5,
            "command_timeout": settings.db_statement_timeout_ms / 1000,
            "server_settings": {"statement_timeout": str(settings.db_statement_timeout_ms)},
        },
    )


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Create the session factory every request and activity uses."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
