"""The outbox dispatcher: delivers committed events to their incidents, one signal per group.

It never stops on its own: every failure is logged with its traceback, counted, backed off and
retried, and the task is restarted if it ends anyway (`supervise`). One group's failure never
holds up another; a group that keeps failing for its own reasons is dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api import outbox
from api.dispatcher_health import DispatcherHealth
from api.incident_delivery import IncidentDelivery, is_outage
from api.metrics import ApiMetrics
from api.outbox import INCIDENT_PREFIX, Group, PoisonGroup
from api.services.fairness import DEFAULT_CAPS, Caps, admit, open_keys, tenant_loads
from tracing import dispatch_span

log = logging.getLogger("awfdrs.dispatcher")
MAX_BACKOFF_S = 10.0
CONCURRENT_SIGNALS = 16
# A pass that has not finished by then is abandoned (its rows are delivered again later).
PASS_TIMEOUT_S = 120.0
OUTAGE = "outage: "
POISON = "poison: "


@dataclass
class PassReport:
    """What one pass did with the groups it claimed."""

    claimed: int = 0
    delivered: list[int] = field(default_factory=list)
    outage: str | None = None
    failed_groups: int = 0
    dead_lettered: int = 0
    deferred: int = 0

    def log(self) -> None:
        """Log the pass's counts (nothing for an idle pass)."""
        if not self.claimed:
            return
        log.info(
            "outbox pass: %d claimed, %d delivered, %d groups failed, %d dead-lettered, "
            "%d deferred (tenant caps)%s",
            self.claimed,
            len(self.delivered),
            self.failed_groups,
            self.dead_lettered,
            self.deferred,
            f"; temporal unavailable: {self.outage}" if self.outage else "",
        )


class OutboxDispatcher:
    """Drains `event_outbox`; safe to run in every API replica at once."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        temporal: Client,
        task_queue: str,
        batch_size: int = 1000,
        poll_interval_s: float = 1.0,
        linger_s: float = 0.05,
        max_failures: int = 10,
        caps: Caps = DEFAULT_CAPS,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._linger_s = linger_s
        self._max_failures = max_failures
        self._caps = caps
        self._metrics = metrics
        self._delivery = IncidentDelivery(
            temporal=temporal, task_queue=task_queue, on_signal=self._count_signal
        )
        self._wake = asyncio.Event()
        self.health = DispatcherHealth()
        self.signals_sent = 0

    def wake(self) -> None:
        """Ask for an immediate pass (called after an intake commit)."""
        self._wake.set()

    def restarted(self) -> None:
        """Note that the supervisor restarted `run` after it ended."""
        self.health.restarts += 1
        self._failed("crash", RuntimeError("the dispatcher task ended and was restarted"))

    async def run(self) -> None:
        """Dispatch until cancelled; a failed pass is logged, counted and backed off."""
        backoff = self._poll_interval_s
        while True:
            # Cleared before claiming: a commit racing with this pass re-arms the wake-up.
            self._wake.clear()
            report = await self._pass()
            if report is not None and report.claimed >= self._batch_size and not report.outage:
                backoff = self._poll_interval_s
                continue  # a full batch: more are waiting
            failing = report is None or report.outage is not None
            backoff = min(backoff * 2, MAX_BACKOFF_S) if failing else self._poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)
            if self._wake.is_set() and self._linger_s:
                # Let a burst accumulate so it travels as one signal, not one per event.
                await asyncio.sleep(self._linger_s)

    async def _pass(self) -> PassReport | None:
        try:
            async with asyncio.timeout(PASS_TIMEOUT_S):
                report = await self.dispatch_once()
        except Exception as exc:  # nothing may stop the dispatcher
            self._failed("pass", exc)
            log.exception("outbox pass failed; it will be retried")
            return None
        self._passed(report)
        return report

    async def dispatch_once(self) -> PassReport:
        """Claim a batch, signal each group once, settle every row; report what happened."""
        report = PassReport()
        async with self._engine.connect() as sa_conn:
            conn = (await sa_conn.get_raw_connection()).driver_connection
            assert conn is not None
            async with conn.transaction():
                rows = await conn.fetch(outbox.CLAIM, self._batch_size)
                report.claimed = len(rows)
                if rows:
                    await self._deliver(conn, outbox.group_rows(rows), report)
        if report.delivered and self._metrics is not None:
            self._metrics.dispatched.inc(len(report.delivered))
        report.log()
        return report

    async def _deliver(
        self, conn: asyncpg.Connection, groups: list[Group], report: PassReport
    ) -> None:
        # Failures first, then successes: a success and a newer failure of the same step in
        # one pass leave the incident open (its latest state is failed), never resolved twice.
        gate = asyncio.Semaphore(CONCURRENT_SIGNALS)
        held = await self._held_back(conn, [g for g in groups if not g.resolves])
        if held:
            await conn.execute(outbox.DEFERRED, [seq for g in held for seq in g.ids])
            report.deferred = len(held)
        waiting = {g.key for g in held}
        groups = [g for g in groups if g.key not in waiting]
        for phase in ([g for g in groups if not g.resolves], [g for g in groups if g.resolves]):
            targets = {g.key: await self._targets(conn, g) for g in phase if g.resolves}
            outcomes = await asyncio.gather(
                *(self._send(gate, g, targets.get(g.key), report) for g in phase)
            )
            for group, error in zip(phase, outcomes, strict=True):
                await self._settle(conn, group, error, report)

    async def _held_back(self, conn: asyncpg.Connection, groups: list[Group]) -> list[Group]:
        """Groups that would open an incident for a tenant at its cap: they wait."""
        keys = [
            g.key
            for g in groups
            if g.key.startswith(INCIDENT_PREFIX) and g.rows[0]["event_type"] is not None
        ]
        already_open = await open_keys(conn, keys)
        new = [g for g in groups if g.key in keys and g.key not in already_open]
        if not new:
            return []
        loads = await tenant_loads(conn, {g.rows[0]["tenant_id"] for g in new}, self._caps)
        admitted = admit([(g.rows[0]["tenant_id"], g.key) for g in new], loads)
        return [g for g in new if g.key not in admitted]

    async def _targets(self, conn: asyncpg.Connection, group: Group) -> list[str] | Exception:
        try:
            async with conn.transaction():  # a savepoint: a failed lookup spoils only its group
                found: list[str] = await outbox.open_incidents(conn, group)
                return found
        except asyncpg.PostgresError as exc:
            if isinstance(exc, asyncpg.PostgresConnectionError):
                raise
            failure: Exception = exc
            return failure

    async def _send(
        self,
        gate: asyncio.Semaphore,
        group: Group,
        targets: list[str] | Exception | None,
        report: PassReport,
    ) -> str | None:
        """Deliver one group; return why it failed, or None."""
        async with gate:
            if report.outage:
                return OUTAGE + report.outage  # do not queue behind a dead server
            try:
                # Temporal's interceptor carries this span into the workflow and activities.
                with dispatch_span(group.key, [row["traceparent"] for row in group.rows]):
                    group.check()
                    if isinstance(targets, Exception):
                        raise targets
                    if group.resolves:
                        await self._delivery.resolve(group, targets or [])
                    else:
                        await self._delivery.start_or_signal(group)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # classified, never propagated
                return self._classify(group, exc, report)
            return None

    def _classify(self, group: Group, exc: Exception, report: PassReport) -> str:
        detail = f"{type(exc).__name__}: {exc}"[:500]
        if is_outage(exc):
            report.outage = report.outage or detail
            return OUTAGE + detail
        log.warning("outbox group %s failed: %s", group.key, detail, exc_info=exc)
        if isinstance(exc, PoisonGroup):
            return POISON + detail
        return detail

    async def _settle(
        self, conn: asyncpg.Connection, group: Group, error: str | None, report: PassReport
    ) -> None:
        if error is None:
            await conn.execute(outbox.DELIVERED, group.ids)
            report.delivered += group.ids
            return
        if error.startswith(OUTAGE):
            await conn.execute(outbox.RETRY_SOON, group.ids, error)
            return
        report.failed_groups += 1
        doomed = error.startswith(POISON) or group.failures + 1 >= self._max_failures
        try:
            async with conn.transaction():  # a savepoint: one group's settlement is its own
                if doomed:
                    await outbox.dead_letter(conn, group, error)
                else:
                    await conn.execute(outbox.RETRY_LATER, group.ids, error)
        except asyncpg.PostgresError as exc:
            if isinstance(exc, asyncpg.PostgresConnectionError):
                raise
            log.exception("outbox group %s could not be settled; it stays queued", group.key)
            return
        self._count_group_failure(group, error, report, dead_lettered=doomed)

    def _count_group_failure(
        self, group: Group, error: str, report: PassReport, *, dead_lettered: bool
    ) -> None:
        if not dead_lettered:
            self._count_error("group")
            return
        report.dead_lettered += 1
        self._count_error("dead_letter")
        log.error(
            "outbox group %s dead-lettered after %d failures: %s",
            group.key,
            group.failures + 1,
            error,
        )

    def _passed(self, report: PassReport) -> None:
        if report.outage:
            self._failed("temporal", RuntimeError(report.outage))
            return
        self.health.record_success()
        if self._metrics is not None:
            self._metrics.dispatcher_last_success.set_to_current_time()

    def _failed(self, kind: str, exc: BaseException) -> None:
        self.health.record_failure(kind, exc)
        self._count_error(kind)

    def _count_error(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.dispatcher_errors.labels(kind).inc()

    def _count_signal(self) -> None:
        self.signals_sent += 1
        if self._metrics is not None:
            self._metrics.signals.inc()

    async def outbox_depth(self) -> dict[str, float]:
        """Return the number of waiting events and the age of the oldest, in seconds."""
        async with self._engine.connect() as sa_conn:
            conn = (await sa_conn.get_raw_connection()).driver_connection
            assert conn is not None
            row = await conn.fetchrow(outbox.DEPTH)
        assert row is not None
        return {"depth": int(row["depth"]), "oldest_age_s": round(float(row["age"] or 0.0), 3)}
