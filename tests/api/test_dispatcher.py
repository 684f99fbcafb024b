"""The dispatcher never stops on its own: failures are logged, counted, backed off and retried."""

from __future__ import annotations

import asyncio
import logging

import pytest
from temporalio.client import Client

from api.dispatcher import OutboxDispatcher
from api.dispatcher_health import supervise
from api.metrics import ApiMetrics
from models.db import create_engine
from settings import Settings


async def test_supervise_restarts_a_task_that_ends_or_crashes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[str] = []
    restarts: list[int] = []

    async def flaky() -> None:
        runs.append("run")
        if len(runs) == 1:
            raise RuntimeError("boom")
        if len(runs) == 2:
            return  # ended without being asked to
        await asyncio.Event().wait()

    task = asyncio.create_task(
        supervise("flaky", flaky, on_restart=lambda: restarts.append(1), backoff_s=0.01)
    )
    for _ in range(100):
        if len(runs) == 3:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (len(runs), len(restarts)) == (3, 2)
    assert "flaky crashed" in caplog.text and "RuntimeError: boom" in caplog.text
    assert "flaky ended unexpectedly" in caplog.text


async def test_a_pass_that_cannot_reach_its_database_is_retried_not_fatal(
    settings: Settings, temporal_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="awfdrs.dispatcher")
    # SQLAlchemy wraps the driver's error: the kind of exception that once killed the task.
    missing = settings.model_copy(
        update={"database_url": settings.plain_database_url.rsplit("/", 1)[0] + "/no_such_db"}
    )
    engine = create_engine(missing)
    metrics = ApiMetrics()
    dispatcher = OutboxDispatcher(
        engine=engine,
        temporal=temporal_client,
        task_queue="unused",
        poll_interval_s=0.05,
        metrics=metrics,
    )
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(1.5)
    alive = not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await engine.dispose()
    assert alive
    assert dispatcher.health.failing
    assert "no_such_db" in (dispatcher.health.last_error or "")
    failures = metrics.registry.get_sample_value("awfdrs_dispatcher_errors_total", {"kind": "pass"})
    assert failures is not None and failures >= 2
    assert "Traceback" in caplog.text
