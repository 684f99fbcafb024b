"""How the API and a dispatcher in its own process talk: a wake-up channel and a heartbeat.

Both live in Redis. The API publishes a wake-up after an intake commit (at most one per
linger period, so a busy API sends a few dozen a second, not one per event); the dispatcher
publishes its health every second under a key that expires, so the API's readiness sees a
dispatcher that stalls, fails or is gone. Without Redis, the dispatcher still polls the outbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.dispatcher_health import DispatcherHealth

log = logging.getLogger("awfdrs.dispatcher")
WAKE_CHANNEL = "awfdrs:outbox:wake"
HEARTBEAT_PREFIX = "awfdrs:dispatcher:"
HEARTBEAT_EVERY_S = 1.0
# A dispatcher whose heartbeat is this old is gone (crashed, stopped, or its loop is stuck).
HEARTBEAT_TTL_S = 10
LISTEN_TIMEOUT_S = 1.0
WARN_EVERY_S = 10.0


class RemoteWake:
    """The API's side: ask the dispatcher process for a pass after a commit."""

    def __init__(self, redis: Redis, *, every_s: float) -> None:
        self._redis = redis
        self._every_s = every_s
        self._last = 0.0
        self._last_warning = 0.0
        self._pending: set[asyncio.Task[None]] = set()

    def __call__(self) -> None:
        """Publish a wake-up unless one left within the dispatcher's linger period."""
        # The dispatcher claims no earlier than one linger after a wake-up arrives, so a
        # commit inside that period is in its claim without a message of its own.
        now = time.monotonic()
        if now - self._last < self._every_s:
            return
        self._last = now
        task = asyncio.get_running_loop().create_task(self._publish())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self) -> None:
        try:
            await self._redis.publish(WAKE_CHANNEL, b"1")
        except (RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._last_warning > WARN_EVERY_S:
                self._last_warning = now
                log.warning("dispatcher wake-up not sent (it polls meanwhile): %s", exc)


async def listen_for_wakes(redis: Redis, wake: Callable[[], None]) -> None:
    """The dispatcher's side: call `wake` for every wake-up published, until cancelled."""
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(WAKE_CHANNEL)
                wake()  # whatever was published while not subscribed
                while True:
                    if await pubsub.get_message(timeout=LISTEN_TIMEOUT_S) is not None:
                        wake()
        except (RedisError, OSError) as exc:
            log.warning("wake-up channel lost (polling meanwhile): %s", exc)
            await asyncio.sleep(HEARTBEAT_EVERY_S)


def instance_name() -> str:
    """Name this dispatcher process in its heartbeat key (host and pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def beat(redis: Redis, health: DispatcherHealth, *, instance: str) -> None:
    """Publish `health` every second under an expiring key, until cancelled."""
    last_warning = 0.0
    while True:
        snapshot = {
            "at": time.time(),
            "last_success_age_s": round(health.success_age_s(), 3),
            "failing": health.failing,
            "last_error": health.last_error_kind,
            "restarts": health.restarts,
        }
        try:
            await redis.set(HEARTBEAT_PREFIX + instance, json.dumps(snapshot), ex=HEARTBEAT_TTL_S)
        except (RedisError, OSError) as exc:
            if time.monotonic() - last_warning > WARN_EVERY_S:
                last_warning = time.monotonic()
                log.warning("dispatcher heartbeat not written: %s", exc)
        await asyncio.sleep(HEARTBEAT_EVERY_S)


@dataclass(frozen=True)
class Heartbeat:
    """The freshest health a dispatcher process published, as of now."""

    instances: int
    last_success_age_s: float
    failing: bool
    last_error: str | None
    restarts: int


def _aged(raw: Any, now: float) -> Heartbeat:
    seen = json.loads(raw)
    return Heartbeat(
        instances=1,
        last_success_age_s=float(seen["last_success_age_s"]) + max(0.0, now - float(seen["at"])),
        failing=bool(seen["failing"]),
        last_error=seen.get("last_error"),
        restarts=int(seen.get("restarts", 0)),
    )


async def read_heartbeats(redis: Redis) -> Heartbeat | None:
    """Return the healthiest live dispatcher's heartbeat (None: no dispatcher process is up)."""
    keys = [key async for key in redis.scan_iter(match=HEARTBEAT_PREFIX + "*", count=100)]
    values = [value for value in (await redis.mget(keys) if keys else []) if value is not None]
    if not values:
        return None
    now = time.time()
    beats = sorted(
        (_aged(value, now) for value in values),
        key=lambda b: (b.failing, b.last_success_age_s),
    )
    best = beats[0]
    return Heartbeat(
        instances=len(beats),
        last_success_age_s=best.last_success_age_s,
        failing=best.failing,
        last_error=best.last_error,
        restarts=sum(b.restarts for b in beats),
    )
