"""The intake pipeline: rate limit, registry check, idempotent store, wake the dispatcher."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import asyncpg
from pydantic import ValidationError
from redis.exceptions import RedisError

from api.errors import RateLimited
from api.metrics import ApiMetrics
from api.outbox import INCIDENT_PREFIX
from api.principals import Principal
from api.services.fairness import DEFAULT_CAPS, Caps, TenantLoad, admit, open_keys, tenant_loads
from api.services.ingest import (
    PreparedEvent,
    StoreOutcome,
    WorkflowState,
    new_event_ids,
    prepare_event,
    store_events,
)
from api.services.workflow_states import WorkflowStateCache
from models.db import UNAVAILABLE_ERRORS
from models.schemas.events import EventIn
from rules.policy import ErrorCatalog
from rules.rate_lease import RateLeases
from rules.rate_limit import RateLimiter
from vocabulary import Remediation

log = logging.getLogger("awfdrs.intake")
# How stale a tenant's load may be when intake labels events deferred (the dispatcher decides).
LOAD_TTL_S = 1.0
REDIS_WARNING_EVERY_S = 10.0
QUIETED_BY_TENANT_CAP = "tenant_cap"


@dataclass(frozen=True)
class Rejected:
    """An item refused before storage, with the HTTP status and reason."""

    status: int
    error: str


ItemResult = StoreOutcome | Rejected


class Intake:
    """Everything `POST /events` needs, built once by the API lifespan."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        limiter: RateLimiter,
        catalog: ErrorCatalog,
        workflows: WorkflowStateCache,
        on_stored: Callable[[], None],
        caps: Caps = DEFAULT_CAPS,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self._pool = pool
        self._caps = caps
        self._loads: dict[uuid.UUID, tuple[float, TenantLoad]] = {}
        # Units leased in blocks per tenant: most events skip the Redis round trip.
        self._limiter = RateLeases(limiter)
        self._catalog = catalog
        self._workflows = workflows
        self._on_stored = on_stored
        self._metrics = metrics
        self._last_redis_warning = 0.0

    def forget_registry(self, tenant_id: uuid.UUID) -> None:
        """Drop the tenant's cached registry and kill-switch state after it changed."""
        self._workflows.forget(tenant_id)

    async def ingest(
        self, principal: Principal, items: list[tuple[EventIn, str]], *, correlation_id: str
    ) -> list[ItemResult]:
        """Admit the items against the tenant's rate, then store them (none: nothing stored)."""
        await self.admit(principal, len(items))
        if not items:
            return []
        return await self.submit(principal=principal, items=items, correlation_id=correlation_id)

    async def admit(self, principal: Principal, quantity: int) -> None:
        """Apply the tenant's GCRA ingest limit, leased; fail open (warning) if Redis is down."""
        rate = principal.ingest_rate_per_s
        try:
            decision = await self._limiter.acquire(
                f"rl:ingest:{principal.tenant_id}",
                rate_per_s=rate,
                burst=rate,
                quantity=quantity,
            )
        except (RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._last_redis_warning > REDIS_WARNING_EVERY_S:
                self._last_redis_warning = now
                log.warning("redis unavailable, ingest rate limit not enforced: %s", exc)
            return
        if not decision.allowed:
            if self._metrics is not None:
                self._metrics.ingest.labels("rate_limited").inc(quantity)
            raise RateLimited(
                f"tenant is over its ingest rate of {rate} events/s",
                retry_after_s=decision.retry_after_s,
            )

    async def submit(
        self,
        *,
        principal: Principal,
        items: list[tuple[EventIn, str]],
        correlation_id: str,
    ) -> list[ItemResult]:
        """Store validated (event, idempotency key) pairs; unknown workflows are rejected."""
        for attempt in (1, 2):
            try:
                async with self._pool.acquire() as conn:
                    results = await self._submit(conn, principal.tenant_id, items, correlation_id)
                break
            except UNAVAILABLE_ERRORS:
                # Pooled connections die with a PostgreSQL restart: drop them all and retry
                # once on a fresh one. The insert is idempotent, so repeating it is safe.
                await self._pool.expire_connections()
                if attempt == 2:
                    raise
        if any(isinstance(item, StoreOutcome) and item.status == 202 for item in results):
            self._on_stored()
        if self._metrics is not None:
            for item in results:
                self._metrics.ingest.labels(outcome_label(item)).inc()
        return results

    async def _submit(
        self,
        conn: asyncpg.Connection,
        tenant_id: uuid.UUID,
        items: list[tuple[EventIn, str]],
        correlation_id: str,
    ) -> list[ItemResult]:
        states = await self._workflows.get_many(
            conn=conn, tenant_id=tenant_id, names={event.workflow for event, _ in items}
        )
        results: list[ItemResult | PreparedEvent] = [
            self._prepare(event, key, tenant_id, states.get(event.workflow), event_id)
            for (event, key), event_id in zip(items, new_event_ids(len(items)), strict=True)
        ]
        results = await self._defer_over_caps(conn, tenant_id, results)
        prepared = [item for item in results if isinstance(item, PreparedEvent)]
        stored = iter(
            await store_events(
                conn=conn, tenant_id=tenant_id, events=prepared, correlation_id=correlation_id
            )
            if prepared
            else []
        )
        outcomes = [next(stored) if isinstance(item, PreparedEvent) else item for item in results]
        self._count_quieted(prepared, outcomes)
        return outcomes

    def _count_quieted(self, prepared: list[PreparedEvent], outcomes: list[ItemResult]) -> None:
        """Count newly stored events that were suppressed, held or deferred, and why."""
        if self._metrics is None:
            return
        stored = {o.event_id for o in outcomes if isinstance(o, StoreOutcome) and o.status == 202}
        for item in prepared:
            if item.quieted_by and item.id in stored:
                self._metrics.quieted.labels(item.remediation, item.quieted_by).inc()

    def _prepare(
        self,
        event: EventIn,
        key: str,
        tenant_id: uuid.UUID,
        workflow: WorkflowState | None,
        event_id: uuid.UUID,
    ) -> PreparedEvent | Rejected:
        if workflow is None or not workflow.active:
            return Rejected(
                404, f"workflow {event.workflow!r} is not registered or not active for this tenant"
            )
        return prepare_event(
            event,
            key=key,
            tenant_id=tenant_id,
            catalog=self._catalog,
            workflow=workflow,
            event_id=event_id,
        )

    async def _defer_over_caps(
        self,
        conn: asyncpg.Connection,
        tenant_id: uuid.UUID,
        results: list[ItemResult | PreparedEvent],
    ) -> list[ItemResult | PreparedEvent]:
        """Mark failures that would open an incident beyond the tenant's caps as deferred."""
        keys: list[str] = list(
            dict.fromkeys(
                item.incident_key
                for item in results
                if isinstance(item, PreparedEvent)
                and item.dispatch
                and item.incident_key is not None
                and item.incident_key.startswith(INCIDENT_PREFIX)
            )
        )
        if not keys:
            return results
        load = await self._load(conn, tenant_id)
        if load.room >= len(keys):
            return results  # the common case: one round trip at most per second per tenant
        new = [key for key in keys if key not in await open_keys(conn, keys)]
        deferred = set(new) - admit([(tenant_id, key) for key in new], {tenant_id: load})
        return [
            replace(item, remediation=Remediation.DEFERRED, quieted_by=QUIETED_BY_TENANT_CAP)
            if isinstance(item, PreparedEvent) and item.incident_key in deferred
            else item
            for item in results
        ]

    async def _load(self, conn: asyncpg.Connection, tenant_id: uuid.UUID) -> TenantLoad:
        cached = self._loads.get(tenant_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        loads = await tenant_loads(conn, {tenant_id}, self._caps)
        load = loads.get(tenant_id) or TenantLoad(0, 0, 1, 1)
        if len(self._loads) > 10_000:
            self._loads.clear()
        self._loads[tenant_id] = (time.monotonic() + LOAD_TTL_S, load)
        return load


def outcome_label(item: ItemResult) -> str:
    """Name an intake outcome for the `awfdrs_ingest_events_total` counter."""
    if isinstance(item, Rejected):
        return "rejected"
    if item.status == 409:
        return "conflict"
    if item.status == 200:
        return "duplicate"
    if item.remediation in (Remediation.SUPPRESSED, Remediation.DEFERRED, Remediation.HELD):
        return str(item.remediation)
    return "accepted"


def parse_event(
    raw: object, header_key: str | None, *, context: dict[str, bool] | None = None
) -> tuple[EventIn, str]:
    """Validate one parsed event body and settle its idempotency key (field or header)."""
    event = EventIn.model_validate(raw, context=context)
    key = event.idempotency_key or header_key
    if key is None:
        raise _key_error("idempotency_key: required (in the body or the Idempotency-Key header)")
    if event.idempotency_key and header_key and event.idempotency_key != header_key:
        raise _key_error("idempotency_key: differs from the Idempotency-Key header")
    return event, key


def _key_error(message: str) -> ValidationError:
    return ValidationError.from_exception_data(
        "EventIn",
        [
            {
                "type": "value_error",
                "loc": ("idempotency_key",),
                "input": None,
                "ctx": {"error": ValueError(message)},
            }
        ],
    )
