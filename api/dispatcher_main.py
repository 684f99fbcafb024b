"""The outbox dispatcher in its own process: `python -m api.dispatcher_main`.

Run it beside API processes started with `AWFDRS_DISPATCHER=process`, so their cores serve
requests only. It wakes on the API's Redis wake-ups (and polls meanwhile), keeps a heartbeat
in Redis that the API's readiness reads, and serves its Prometheus metrics on
AWFDRS_DISPATCHER_METRICS_ADDRESS when set. Several may run at once: the outbox's claims and
per-key locks keep them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvloop
from prometheus_client import start_http_server
from redis.asyncio import Redis

from api.app import build_dispatcher, tenant_caps
from api.dispatcher_health import supervise
from api.dispatcher_link import HEARTBEAT_PREFIX, beat, instance_name, listen_for_wakes
from api.metrics import ApiMetrics
from clients import connect_temporal, create_engine, create_redis
from observability import configure_logging
from settings import Settings, load_settings

log = logging.getLogger("awfdrs.dispatcher")


def _serve_metrics(address: str | None, metrics: ApiMetrics) -> None:
    if address is None:
        return
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host, registry=metrics.registry)


async def run(settings: Settings, *, stopping: asyncio.Event) -> None:
    """Dispatch the outbox until `stopping` is set."""
    engine, redis = create_engine(settings), create_redis(settings)
    # Without a socket timeout: it waits for wake-ups between them, which may be long.
    listener = Redis.from_url(settings.redis_url, socket_connect_timeout=settings.redis_timeout_s)
    temporal = await connect_temporal(settings, lazy=True)
    metrics = ApiMetrics()
    dispatcher = build_dispatcher(
        settings, engine=engine, temporal=temporal, caps=tenant_caps(settings), metrics=metrics
    )
    _serve_metrics(settings.dispatcher_metrics_address, metrics)
    tasks = [
        asyncio.create_task(
            supervise("outbox dispatcher", dispatcher.run, on_restart=dispatcher.restarted)
        ),
        asyncio.create_task(listen_for_wakes(listener, dispatcher.wake)),
        asyncio.create_task(beat(redis, dispatcher.health, instance=instance_name())),
    ]
    log.info("outbox dispatcher running")
    try:
        await stopping.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):  # the heartbeat expires on its own anyway
            await redis.delete(HEARTBEAT_PREFIX + instance_name())
        await listener.aclose()
        await redis.aclose()
        await engine.dispose()
        log.info("outbox dispatcher stopped")


async def _main(settings: Settings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await run(settings, stopping=stopping)


def main() -> None:
    """Run the dispatcher process until SIGINT or SIGTERM."""
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    uvloop.run(_main(settings))


if __name__ == "__main__":
    main()
