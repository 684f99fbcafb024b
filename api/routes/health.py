"""Liveness and readiness: readiness really talks to PostgreSQL, Redis and Temporal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import RedisDep, SessionFactoryDep, SettingsDep, TemporalDep
from api.dispatcher import OutboxDispatcher
from api.errors import problem

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0


class Liveness(BaseModel):
    """The process is up and serving HTTP."""

    status: Literal["ok"] = "ok"


class DependencyCheck(BaseModel):
    """The outcome of one dependency probe."""

    ok: bool
    latency_ms: float
    error: str | None = None


class DispatcherCheck(BaseModel):
    """The outbox dispatcher of this process: is it completing passes?"""

    ok: bool
    enabled: bool
    last_success_age_s: float
    last_error: str | None = None
    restarts: int = 0


class OutboxState(BaseModel):
    """Events committed but not yet signalled to their incidents."""

    depth: int
    oldest_age_s: float


class Readiness(BaseModel):
    """Every dependency answered."""

    status: Literal["ready"] = "ready"
    checks: dict[str, DependencyCheck | DispatcherCheck]
    outbox: OutboxState | None = None


async def _probe(check: Callable[[], Awaitable[object]]) -> DependencyCheck:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure means "not ready"; the type is reported
        error = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
        return DependencyCheck(ok=False, latency_ms=_ms(started), error=error)
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
    request: Request,
    sessions: SessionFactoryDep,
    redis: RedisDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> Readiness | JSONResponse:
    """Check PostgreSQL, Redis, Temporal and the dispatcher; 503 names what is down."""

    async def postgres() -> None:
        async with sessions() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]

    async def temporal_health() -> None:
        await temporal.service_client.check_health()

    names = ("postgresql", "redis", "temporal")
    results = await asyncio.gather(_probe(postgres), _probe(redis.ping), _probe(temporal_health))
    probes = dict(zip(names, results, strict=True))
    outbox = await _outbox(request) if probes["postgresql"].ok else None
    dispatcher = _dispatcher(request, settings.dispatcher_stale_after_s)
    checks: dict[str, DependencyCheck | DispatcherCheck] = {**probes, "dispatcher": dispatcher}
    down = [name for name, check in probes.items() if not check.ok]
    # A failing dispatcher matters once events wait on it: a brief blip is not an outage.
    if (
        not dispatcher.ok
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


def _dispatcher(request: Request, stale_after_s: float) -> DispatcherCheck:
    health = request.app.state.dispatcher.health
    age = health.success_age_s()
    return DispatcherCheck(
        ok=not health.enabled or (not health.failing and age <= stale_after_s),
        enabled=health.enabled,
        last_success_age_s=round(age, 3),
        last_error=health.last_error,
        restarts=health.restarts,
    )


async def _outbox(request: Request) -> OutboxState | None:
    dispatcher: OutboxDispatcher = request.app.state.dispatcher
    try:
        return OutboxState(**await asyncio.wait_for(dispatcher.outbox_depth(), CHECK_TIMEOUT_S))
    except Exception:  # readiness must answer even when the detail cannot be read
        return None
