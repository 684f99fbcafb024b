"""Async engine and session factory, built once per composition root."""

from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from settings import Settings

SessionFactory = async_sessionmaker[AsyncSession]
# What asyncpg raises when PostgreSQL cannot serve us right now (down, restarting, failing
# over, refusing new connections, out of connection slots): "retry later", never a bug.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def create_engine(
    settings: Settings,
    *,
    pool_size: int | None = None,
    pool_timeout_s: float = 5,
    single_statement_writes: bool = False,
) -> AsyncEngine:
    """Create the async engine with bounded pool and statement timeouts.

    `single_statement_writes` suits a caller whose every write is one idempotent statement
    that is retried on failure (the worker's activities): autocommit and no pre-ping turn
    each write from six round trips (the ping's begin, select and rollback, then begin,
    statement and commit) into one. A connection that died with the server fails once;
    SQLAlchemy then discards every pooled connection older than that error.
    """
    size = pool_size or settings.db_pool_size
    return create_async_engine(
        settings.async_database_url,
        pool_size=size,
        max_overflow=size,
        pool_pre_ping=not single_statement_writes,
        pool_timeout=pool_timeout_s,
        isolation_level="AUTOCOMMIT" if single_statement_writes else "READ COMMITTED",
        connect_args={
            "timeout": 5,
            "command_timeout": settings.db_statement_timeout_ms / 1000,
            "server_settings": {"statement_timeout": str(settings.db_statement_timeout_ms)},
        },
    )


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Create the session factory every request and activity uses."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
