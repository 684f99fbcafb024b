"""The worker waits for Temporal with a clear message and stops when told."""

from __future__ import annotations

import asyncio
import logging

import pytest

from devstack.process import free_port
from settings import Settings
from worker import connect_with_retry


async def test_unreachable_temporal_is_retried_with_a_clear_message(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    stopping = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="awfdrs.worker")
    task = asyncio.create_task(connect_with_retry(unreachable, stopping))
    deadline = asyncio.get_running_loop().time() + 15
    while "temporal unreachable" not in caplog.text:
        assert asyncio.get_running_loop().time() < deadline, "no retry message logged"
        await asyncio.sleep(0.1)
    stopping.set()
    assert await asyncio.wait_for(task, 15) is None
    assert unreachable.temporal_address in caplog.text


async def test_reachable_temporal_connects(settings: Settings) -> None:
    client = await connect_with_retry(settings, asyncio.Event())
    assert client is not None
    assert await client.service_client.check_health()
