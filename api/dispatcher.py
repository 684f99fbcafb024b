"""The outbox dispatcher: coalesces committed events per incident into Temporal signals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from api.metrics import ApiMetrics
from workflows.incident_types import (
    EVENTS_SIGNAL,
    MAX_EVENTS_PER_SIGNAL,
    MAX_PAYLOAD_BYTES,
    WORKFLOW_TYPE,
    EventBatch,
    EventSummary,
    IncidentInput,
)

log = logging.getLogger("awfdrs.dispatcher")
RPC_TIMEOUT = timedelta(seconds=5)
MAX_BACKOFF_S = 10.0
CONCURRENT_SIGNALS = 16

_CLAIM = """
SELECT o.id AS outbox_id, o.incident_key, o.tenant_id, e.id, e.event_type, e.workflow, e.step,
       e.vendor, e.error_code, e.error_message, e.http_status, e.payload::text AS payload,
       e.correlation_id, e.occurred_at, e.signature
FROM event_outbox o JOIN events e ON e.id = o.event_id
WHERE o.available_at <= now()
ORDER BY o.id
LIMIT $1
FOR UPDATE OF o SKIP LOCKED
"""
_DONE = "DELETE FROM event_outbox WHERE id = ANY($1::bigint[])"
_RETRY_LATER = """
UPDATE event_outbox SET attempts = attempts + 1,
       available_at = now() + least(power(2, attempts), 60) * interval '1 second'
WHERE id = ANY($1::bigint[])
"""
_OPEN_FAILURES = """
SELECT DISTINCT incident_key FROM events
WHERE tenant_id = $1 AND workflow = $2 AND ($3::text IS NULL OR step = $3)
  AND event_type IN ('step.failed', 'workflow.failed') AND incident_key IS NOT NULL
  AND received_at > now() - interval '30 days'
LIMIT 100
"""
_DEPTH = (
    "SELECT count(*) AS depth, extract(epoch FROM now() - min(created_at)) AS age FROM event_outbox"
)
KEYWORDS = {
    name: SearchAttributeKey.for_keyword(name)
    for name in ("TenantId", "IncidentStatus", "ErrorCode", "Vendor", "SourceWorkflow", "Signature")
}


@dataclass
class DispatchStats:
    """Totals since the dispatcher started."""

    events: int = 0
    signals: int = 0
    failed_groups: int = 0
    last_error: str | None = None


def summarise(row: asyncpg.Record, *, with_payload: bool) -> EventSummary:
    """Turn an outbox row into the compact summary the workflow receives."""
    payload = None
    if with_payload and row["payload"] and len(row["payload"]) <= MAX_PAYLOAD_BYTES:
        payload = json.loads(row["payload"])
    message = row["error_message"]
    return EventSummary(
        event_id=str(row["id"]),
        event_type=row["event_type"],
        occurred_at=row["occurred_at"],
        step=row["step"],
        vendor=row["vendor"],
        error_code=row["error_code"],
        error_message=message[:500] if message else None,
        http_status=row["http_status"],
        correlation_id=row["correlation_id"],
        payload=payload,
    )


def _chunks(rows: list[asyncpg.Record]) -> list[EventBatch]:
    batches = []
    for start in range(0, len(rows), MAX_EVENTS_PER_SIGNAL):
        chunk = rows[start : start + MAX_EVENTS_PER_SIGNAL]
        batches.append(
            EventBatch(
                [summarise(row, with_payload=i == len(chunk) - 1) for i, row in enumerate(chunk)]
            )
        )
    return batches


def _start_options(first: asyncpg.Record) -> dict[str, Any]:
    values = {
        "TenantId": str(first["tenant_id"]),
        "IncidentStatus": "open",
        "ErrorCode": first["error_code"],
        "Vendor": first["vendor"],
        "SourceWorkflow": first["workflow"],
        "Signature": first["signature"],
    }
    pairs = [SearchAttributePair(KEYWORDS[k], v) for k, v in values.items() if v]
    summary = " · ".join(
        part
        for part in (first["workflow"], first["error_code"] or "error", first["vendor"])
        if part
    )
    return {
        "search_attributes": TypedSearchAttributes(pairs),
        "static_summary": summary[:200],
        "memo": {"correlation_id": first["correlation_id"]},
    }


class OutboxDispatcher:
    """Drains `event_outbox`; safe to run in every API replica at once (SKIP LOCKED)."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        temporal: Client,
        task_queue: str,
        batch_size: int = 1000,
        poll_interval_s: float = 1.0,
        linger_s: float = 0.05,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self._engine = engine
        self._task_queue = task_queue
        self._temporal = temporal
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._linger_s = linger_s
        self._metrics = metrics
        self._wake = asyncio.Event()
        self.stats = DispatchStats()

    def wake(self) -> None:
        """Ask for an immediate pass (called after an intake commit)."""
        self._wake.set()

    async def run(self) -> None:
        """Dispatch until cancelled, backing off while Temporal or PostgreSQL is down."""
        backoff = self._poll_interval_s
        last_report = 0.0
        while True:
            # Cleared before claiming: a commit racing with this pass re-arms the wake-up.
            self._wake.clear()
            try:
                claimed, failed = await self.dispatch_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                claimed, failed = 0, 1
                self.stats.last_error = f"database: {exc}"
                log.warning("outbox unavailable: %s", exc)
            if claimed >= self._batch_size and not failed:
                backoff = self._poll_interval_s
                continue  # a full batch: more are waiting
            if failed:
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                await self._report()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), backoff if failed else self._poll_interval_s
                )
            if self._wake.is_set() and self._linger_s:
                # Let a burst accumulate so it travels as one signal, not one per event.
                await asyncio.sleep(self._linger_s)

    async def dispatch_once(self) -> tuple[int, int]:
        """Claim a batch, signal each incident once, settle the rows; return (claimed, failed)."""
        async with self._engine.connect() as sa_conn:
            conn = (await sa_conn.get_raw_connection()).driver_connection
            assert conn is not None
            async with conn.transaction():
                rows = await conn.fetch(_CLAIM, self._batch_size)
                if not rows:
                    return 0, 0
                groups = [
                    (key, list(group))
                    for key, group in groupby(
                        sorted(rows, key=lambda r: (r["incident_key"], r["outbox_id"])),
                        key=lambda r: r["incident_key"],
                    )
                ]
                groups.sort(key=lambda g: g[1][0]["outbox_id"])
                # One connection runs one query at a time: look resolution targets up first,
                # then signal concurrently.
                targets = {
                    key: await self._targets(conn, group)
                    for key, group in groups
                    if key.startswith("resolve:")
                }
                gate = asyncio.Semaphore(CONCURRENT_SIGNALS)
                outcomes = await asyncio.gather(
                    *(self._send(gate, key, group, targets.get(key, [])) for key, group in groups)
                )
                done = [
                    r["outbox_id"]
                    for ok, (_, g) in zip(outcomes, groups, strict=True)
                    if ok
                    for r in g
                ]
                failed = [
                    r["outbox_id"]
                    for ok, (_, g) in zip(outcomes, groups, strict=True)
                    if not ok
                    for r in g
                ]
                await conn.execute(_DONE, done)
                if failed:
                    await conn.execute(_RETRY_LATER, failed)
        signals = sum(outcomes)
        self.stats.events += len(done)
        if self._metrics is not None:
            self._metrics.dispatched.inc(len(done))
        self.stats.failed_groups += len(groups) - signals
        log.info(
            "dispatched %d events to %d incidents (%d groups failed, %d signals in total)",
            len(done),
            signals,
            len(groups) - signals,
            self.stats.signals,
        )
        return len(rows), len(groups) - signals

    async def _send(
        self,
        gate: asyncio.Semaphore,
        key: str,
        rows: list[asyncpg.Record],
        targets: list[str],
    ) -> bool:
        async with gate:
            try:
                if key.startswith("resolve:"):
                    await self._resolve(targets, rows)
                else:
                    await self._signal_with_start(key, rows)
            except (RPCError, RuntimeError, OSError) as exc:
                self.stats.last_error = f"temporal: {exc}"
                log.warning("signal to %s failed, will retry: %s", key, exc)
                return False
            return True

    async def _signal_with_start(self, key: str, rows: list[asyncpg.Record]) -> None:
        first = rows[0]
        start = IncidentInput(
            tenant_id=str(first["tenant_id"]),
            source_workflow=first["workflow"],
            signature=first["signature"],
            step=first["step"],
            error_code=first["error_code"],
            vendor=first["vendor"],
            correlation_id=first["correlation_id"],
        )
        for batch in _chunks(rows):
            await self._temporal.start_workflow(
                WORKFLOW_TYPE,
                start,
                id=key,
                task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                start_signal=EVENTS_SIGNAL,
                start_signal_args=[batch],
                rpc_timeout=RPC_TIMEOUT,
                **_start_options(first),
            )
            self._count_signal()

    @staticmethod
    async def _targets(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[str]:
        """Incidents a group of success events may resolve (same workflow, and step)."""
        first = rows[0]
        step = first["step"] if first["event_type"] == "step.succeeded" else None
        found = await conn.fetch(_OPEN_FAILURES, first["tenant_id"], first["workflow"], step)
        return [row["incident_key"] for row in found]

    async def _resolve(self, targets: list[str], rows: list[asyncpg.Record]) -> None:
        for target in targets:
            handle = self._temporal.get_workflow_handle(target)
            for batch in _chunks(rows):
                try:
                    await handle.signal(EVENTS_SIGNAL, batch, rpc_timeout=RPC_TIMEOUT)
                    self._count_signal()
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    break  # closed or never started: nothing to resolve

    def _count_signal(self) -> None:
        self.stats.signals += 1
        if self._metrics is not None:
            self._metrics.signals.inc()

    async def outbox_depth(self) -> dict[str, float]:
        """Return the number of waiting events and the age of the oldest, in seconds."""
        async with self._engine.connect() as sa_conn:
            conn = (await sa_conn.get_raw_connection()).driver_connection
            assert conn is not None
            row = await conn.fetchrow(_DEPTH)
        assert row is not None
        return {"depth": int(row["depth"]), "oldest_age_s": round(float(row["age"] or 0.0), 3)}

    async def _report(self) -> None:
        try:
            depth = await self.outbox_depth()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return
        if depth["depth"]:
            log.info(
                "outbox backlog",
                extra={
                    "outbox_depth": depth["depth"],
                    "outbox_oldest_age_s": depth["oldest_age_s"],
                },
            )
