"""PostgreSQL outages with the dispatcher, the worker and the API all running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from devstack.http_target import CallbackServer, Reply
from devstack.postgres import EmbeddedPostgres, share_with_server_user
from models.migrate import upgrade_database
from tests.faults.conftest import Pipeline, PipelineFactory
from tests.faults.support import QUICK, Sender, ledger_of
from tests.utils.builders import register_workflow
from tests.utils.signatures import SignatureAudit
from worker import activity_set, build_worker

REFUSE_ALL = "host all all 127.0.0.1/32 reject\nhost all all ::1/128 reject\n"
TERMINATE_OTHERS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
"""


class Outage:
    """Starts and ends one kind of PostgreSQL outage."""

    def __init__(self, pg: EmbeddedPostgres, kind: str) -> None:
        self.pg, self.kind = pg, kind
        self.hba = pg.pgdata / "pg_hba.conf"
        self.original = self.hba.read_text()
        self.admin: asyncpg.Connection | None = None

    async def begin(self) -> None:
        """Stop the server, or make it refuse new connections and drop the open ones."""
        if self.kind == "stopped":
            await asyncio.to_thread(self.pg.stop)
            return
        # A failover as clients see it: the server is up, but nobody may (re)connect.
        self.admin = await asyncpg.connect(self.pg.url)
        self.hba.write_text(REFUSE_ALL)
        await self.admin.execute("SELECT pg_reload_conf()")
        await self.admin.execute(TERMINATE_OTHERS)

    async def end(self) -> None:
        """Bring the server back."""
        if self.kind == "stopped":
            await asyncio.to_thread(self.pg.start)
            return
        assert self.admin is not None
        self.hba.write_text(self.original)
        await self.admin.execute("SELECT pg_reload_conf()")
        await self.admin.close()


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[EmbeddedPostgres]:
    """A durable, migrated PostgreSQL this test may stop, restart and lock out."""
    share_with_server_user(tmp_path)
    pg = EmbeddedPostgres(tmp_path / "pg", durable=True)
    pg.start()
    await asyncio.to_thread(
        upgrade_database, pg.url.replace("postgresql://", "postgresql+asyncpg://")
    )
    yield pg
    pg.stop()


async def _watch_readiness(p: Pipeline, seen: list[dict[str, Any]]) -> None:
    while True:
        response = await p.http.get("/api/v1/health/ready")
        body = response.json()
        seen.append({"status": response.status_code, "dispatcher": body["checks"]["dispatcher"]})
        await asyncio.sleep(0.25)


async def _during(
    task: Callable[[], Coroutine[Any, Any, None]], body: Callable[[], Awaitable[None]]
) -> None:
    watcher = asyncio.create_task(task())
    try:
        await body()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


@pytest.mark.parametrize("kind", ["refusing connections", "stopped"])
async def test_postgres_outage_loses_nothing_and_every_event_reaches_its_incident(
    pipeline: PipelineFactory,
    own_postgres: EmbeddedPostgres,
    kind: str,
    signature_audit: SignatureAudit,
) -> None:
    p: Pipeline = await pipeline(database_url=own_postgres.url)
    signature_audit.watch(own_postgres.url)  # the callbacks are signed from there
    outage = Outage(own_postgres, kind)
    parked = {**QUICK, "initial_interval_s": 600, "max_interval_s": 600}
    readiness: list[dict[str, Any]] = []
    sender = Sender(p)
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer([Reply(503)]) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=parked)

        async def traffic() -> None:
            for n in range(60):
                if n == 15:
                    await outage.begin()
                    await _during(lambda: _watch_readiness(p, readiness), _window)
                    await outage.end()
                await sender.send(step=f"step-{n % 3}")
                await asyncio.sleep(0.1)

        async def _window() -> None:
            for _ in range(40):  # about eight seconds of traffic against the outage
                await sender.send(step="step-0")
                await asyncio.sleep(0.2)

        await traffic()
        ledger = await ledger_of(p, sender, server)  # waits up to 60 s for every event
        reached_in_time = await p.reached(sender.incidents, len(sender.accepted), timeout=30)
    assert sender.refused >= 10, "the outage never showed at the intake"
    assert any(r["status"] == 503 and not r["dispatcher"]["ok"] for r in readiness), readiness
    assert reached_in_time == len(sender.accepted) == ledger.stored
    assert ledger.duplicate_deliveries == 0
    ledger.assert_clean()
    assert p.app.state.dispatcher.health.failing is False
