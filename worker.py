"""Composition root of the Temporal worker: builds clients, registers activities, runs."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from api.app import connect_temporal
from models.db import create_engine
from observability import configure_logging
from settings import TASK_QUEUE, Settings, load_settings
from workflows import WORKFLOWS

log = logging.getLogger("awfdrs.worker")
GRACEFUL_SHUTDOWN_S = 20.0
MAX_CONNECT_BACKOFF_S = 10.0


async def connect_with_retry(settings: Settings, stopping: asyncio.Event) -> Client | None:
    """Dial Temporal until it answers, logging clearly while it is unreachable."""
    delay = 0.5
    while not stopping.is_set():
        try:
            client = await connect_temporal(settings, lazy=False)
        except (RuntimeError, RPCError, OSError) as exc:
            log.warning(
                "temporal unreachable at %s (%s); retrying in %.1fs",
                settings.temporal_address,
                exc,
                delay,
            )
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, MAX_CONNECT_BACKOFF_S)
            continue
        log.info("connected to temporal", extra={"address": settings.temporal_address})
        return client
    return None


def registered_activities() -> Sequence[Callable[..., Any]]:
    """Return the bound activity methods this worker serves (none exist yet)."""
    return []


async def run(settings: Settings, stopping: asyncio.Event) -> None:
    """Serve the task queue until `stopping` is set, then drain gracefully."""
    engine = create_engine(settings)
    try:
        client = await connect_with_retry(settings, stopping)
        if client is None:
            return
        activities = registered_activities()
        if not WORKFLOWS and not activities:
            log.warning("no workflows or activities are registered yet; idling until stopped")
            await stopping.wait()
            return
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=WORKFLOWS,
            activities=activities,
            graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN_S),
        )
        async with worker:
            log.info("worker running", extra={"task_queue": TASK_QUEUE})
            await stopping.wait()
            log.info("shutting down: finishing running activities")
    finally:
        await engine.dispose()


async def _main() -> None:
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await run(settings, stopping)
    log.info("worker stopped")


def main() -> None:
    """Run the worker process (`python -m worker`)."""
    asyncio.run(_main())


if __name__ == "__main__":
    main()
