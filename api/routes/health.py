"""Liveness and readiness: readiness really talks to PostgreSQL, Redis and Temporal."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Literal

import asyncpg
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from sqlalchemy import text
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.deps import DispatcherDep, RedisDep, SessionFactoryDep, SettingsDep, TemporalDep
from api.dispatcher import OutboxDispatcher
from api.dispatcher_health import DispatcherHealth
from api.dispatcher_link import read_heartbeats
from api.errors import problem
from models.db import SessionFactory

router = APIRouter(tags=["health"])
log = logging.getLogger("awfdrs.health")
CHECK_TIMEOUT_S = 2.0
# Probe failures as readiness reports them: stable words, never the exception's text (which
# carries hosts, ports and DSNs). The first kind matching anywhere in the cause chain wins.
FailureKind = tuple[str, tuple[type[BaseException], ...], frozenset[RPCStatusCode]]
FAILURE_KINDS: tuple[FailureKind, ...] = (
    (
        "authentication failed",
        (
            asyncpg.InvalidAuthorizationSpecificationError,
            redis_errors.AuthenticationError,
            redis_errors.AuthorizationError,
        ),
        frozenset({RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED}),
    ),
    (
        "timed out",
        (TimeoutError, redis_errors.TimeoutError),
        frozenset({RPCStatusCode.DEADLINE_EXCEEDED}),
    ),
    ("refused", (ConnectionRefusedError,), frozenset()),
    (
        "unreachable",
        (OSError, redis_errors.ConnectionError, asyncpg.PostgresConnectionError),
        frozenset({RPCStatusCode.UNAVAILABLE}),
    ),
)
# What the Temporal client raises when its (lazy) first dial fails.
TEMPORAL_CONNECT_FAILURE = "Failed client connect"


class Liveness(BaseModel):
    """The process is up and serving HTTP."""

    status: Literal["ok"] = "ok"


class DependencyCheck(BaseModel):
    """The outcome of one dependency probe; `error` is a fixed word, the detail is logged."""

    ok: bool
    latency_ms: float
    error: str | None = None


class DispatcherCheck(BaseModel):
    """The outbox dispatcher (of this process, or the dispatcher processes): completing passes?"""

    ok: bool
    enabled: bool
    mode: Literal["inline", "process", "off"] = "inline"
    # None: no dispatcher process has a live heartbeat (process mode only).
    last_success_age_s: float | None
    # The kind of the last failure: pass, temporal or crash; in process mode also `absent`
    # (no live heartbeat) or `unreachable` (the heartbeat could not be read).
    last_error: str | None = None
    restarts: int = 0
    instances: int | None = None  # process mode: dispatcher processes with a live heartbeat


class OutboxState(BaseModel):
    """Events committed but not yet signalled to their incidents."""

    depth: int
    oldest_age_s: float


class Readiness(BaseModel):
    """Every dependency answered."""

    status: Literal["ready"] = "ready"
    checks: dict[str, DependencyCheck | DispatcherCheck]
    outbox: OutboxState | None = None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        yield current
        # SQLAlchemy keeps the driver's exception in `orig`.
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__


def _matches(cause: BaseException, kind: FailureKind) -> bool:
    _, types, statuses = kind
    if isinstance(cause, RPCError):
        return cause.status in statuses
    return isinstance(cause, types)


def failure_reason(exc: BaseException) -> str:
    """Name a probe failure in words that carry no host, port or credential."""
    causes = list(_causes(exc))
    for kind in FAILURE_KINDS:
        if any(_matches(cause, kind) for cause in causes):
            return kind[0]
    if any(str(cause).startswith(TEMPORAL_CONNECT_FAILURE) for cause in causes):
        return "unreachable"
    return "error"


async def _probe(name: str, check: Callable[[], Awaitable[object]]) -> DependencyCheck:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure means "not ready"; the detail stays in the log
        reason = failure_reason(exc)
        log.warning("readiness: %s %s: %s: %s", name, reason, type(exc).__name__, exc)
        return DependencyCheck(ok=False, latency_ms=_ms(started), error=reason)
    return DependencyCheck(ok=True, latency_ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@router.get("/health", operation_id="getLiveness", response_model=Liveness)
async def liveness() -> Liveness:
    """Answer 200 while the process serves HTTP."""
    return Liveness()


@router.get(
    "/health/ready",
    operation_id="getReadiness",
    response_model=Readiness,
    responses={503: {"description": "A dependency is down; `detail` names it"}},
)
async def readiness(
    *,
    dispatcher: DispatcherDep,
    sessions: SessionFactoryDep,
    redis: RedisDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> Readiness | JSONResponse:
    """Check PostgreSQL, Redis, Temporal and the dispatcher; 503 names what is down."""
    probes = await _probe_dependencies(sessions=sessions, redis=redis, temporal=temporal)
    outbox = await _outbox(dispatcher) if probes["postgresql"].ok else None
    dispatching = (
        await _dispatcher_processes(redis, settings.dispatcher_stale_after_s)
        if settings.dispatcher_mode == "process"
        else _dispatcher(dispatcher.health, settings.dispatcher_stale_after_s)
    )
    checks: dict[str, DependencyCheck | DispatcherCheck] = {**probes, "dispatcher": dispatching}
    down = [name for name, check in probes.items() if not check.ok]
    # A failing dispatcher matters once events wait on it: a brief blip is not an outage.
    if (
        not dispatching.ok
        and outbox is not None
        and outbox.oldest_age_s > settings.dispatcher_stale_after_s
    ):
        down.append("dispatcher")
    if down:
        return problem(
            503,
            "Service unavailable",
            f"not ready: {', '.join(down)} unavailable",
            headers={"Retry-After": "2"},
            down=down,
            checks={name: check.model_dump() for name, check in checks.items()},
            outbox=outbox.model_dump() if outbox else None,
        )
    return Readiness(checks=checks, outbox=outbox)


async def _probe_dependencies(
    *, sessions: SessionFactory, redis: Redis, temporal: Client
) -> dict[str, DependencyCheck]:
    """Probe PostgreSQL, Redis and Temporal at once."""

    async def postgres() -> None:
        async with sessions() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]

    async def temporal_health() -> None:
        await temporal.service_client.check_health()

    dependencies: dict[str, Callable[[], Awaitable[object]]] = {
        "postgresql": postgres,
        "redis": redis.ping,
        "temporal": temporal_health,
    }
    results = await asyncio.gather(*(_probe(name, c) for name, c in dependencies.items()))
    return dict(zip(dependencies, results, strict=True))


def _dispatcher(health: DispatcherHealth, stale_after_s: float) -> DispatcherCheck:
    age = health.success_age_s()
    return DispatcherCheck(
        ok=not health.enabled or (not health.failing and age <= stale_after_s),
        enabled=health.enabled,
        mode="inline" if health.enabled else "off",
        last_success_age_s=round(age, 3),
        last_error=health.last_error_kind,  # the kind only: the message names hosts and DSNs
        restarts=health.restarts,
    )


async def _dispatcher_processes(redis: Redis, stale_after_s: float) -> DispatcherCheck:
    """Judge the dispatcher processes by the heartbeats they keep in Redis."""
    try:
        beat = await asyncio.wait_for(read_heartbeats(redis), CHECK_TIMEOUT_S)
    except Exception as exc:  # readiness must answer; Redis's own probe names the outage
        log.warning("readiness: dispatcher heartbeat unreadable: %s: %s", type(exc).__name__, exc)
        return _no_heartbeat("unreachable")
    if beat is None:
        return _no_heartbeat("absent")
    return DispatcherCheck(
        ok=not beat.failing and beat.last_success_age_s <= stale_after_s,
        enabled=True,
        mode="process",
        last_success_age_s=round(beat.last_success_age_s, 3),
        last_error=beat.last_error,
        restarts=beat.restarts,
        instances=beat.instances,
    )


def _no_heartbeat(reason: str) -> DispatcherCheck:
    return DispatcherCheck(
        ok=False,
        enabled=True,
        mode="process",
        last_success_age_s=None,
        last_error=reason,
        instances=0,
    )


async def _outbox(dispatcher: OutboxDispatcher) -> OutboxState | None:
    try:
        return OutboxState(**await asyncio.wait_for(dispatcher.outbox_depth(), CHECK_TIMEOUT_S))
    except Exception:  # readiness must answer even when the detail cannot be read
        return None
