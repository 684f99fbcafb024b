"""The dispatcher in its own process: woken through Redis, watched by the API's readiness."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client

from api import dispatcher_main
from api.app import create_app
from settings import Settings
from tests.api.test_ingest_pipeline import _client, _new_tenant
from tests.utils.builders import failure_event, register_workflow


async def _dispatcher_check(http: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await http.get("/api/v1/health/ready")
    body = response.json()
    return response.status_code, body["checks"]["dispatcher"]


async def _until_check(http: httpx.AsyncClient, **wanted: object) -> dict[str, Any]:
    for _ in range(100):
        _, check = await _dispatcher_check(http)
        if wanted.items() <= check.items():
            return check
        await asyncio.sleep(0.1)
    raise AssertionError(f"readiness never showed {wanted}: {check}")


async def _waiting(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM event_outbox")
        return count
    finally:
        await conn.close()


async def _until_drained(database_url: str, seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        if not await _waiting(database_url):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the outbox still holds {await _waiting(database_url)} rows")


async def test_the_dispatcher_process_is_woken_by_intake_and_watched_by_readiness(
    isolated_settings: Settings, temporal_client: Client
) -> None:
    # A 30 s poll: only a wake-up through Redis delivers within the few seconds allowed.
    settings = isolated_settings.model_copy(
        update={
            "dispatcher": "process",
            "task_queue": f"process-{uuid.uuid4().hex}",
            "dispatcher_poll_interval_s": 30.0,
            "dispatcher_stale_after_s": 1.0,
        }
    )
    app = create_app(settings, temporal=temporal_client)
    async with app.router.lifespan_context(app), await _client(app) as http:
        status, check = await _dispatcher_check(http)
        assert (status, check["ok"], check["last_error"]) == (200, False, "absent")
        assert check["mode"] == "process" and check["instances"] == 0
        # Only the dispatcher process exports it: a 0 here would read as a stalled dispatcher.
        assert "awfdrs_dispatcher_last_success" not in (await http.get("/metrics")).text

        stopping = asyncio.Event()
        running = asyncio.create_task(dispatcher_main.run(settings, stopping=stopping))
        try:
            await _until_check(http, ok=True, instances=1, mode="process")
            tenant = await _new_tenant(http)
            await register_workflow(http, tenant)
            await asyncio.sleep(0.5)  # past the dispatcher's start-up pass
            sent = await http.post("/api/v1/events", json=failure_event(), headers=tenant.headers)
            assert sent.status_code == 202, sent.text
            await _until_drained(settings.plain_database_url, seconds=10)
            started = await temporal_client.get_workflow_handle(
                sent.json()["incident_key"]
            ).describe()
            assert started.task_queue == settings.task_queue
        finally:
            stopping.set()
            await running

        await _until_check(http, ok=False, last_error="absent")
        waiting = await http.post("/api/v1/events", json=failure_event(), headers=tenant.headers)
        assert waiting.status_code == 202, waiting.text
        await asyncio.sleep(1.5)  # the event now waits longer than AWFDRS_DISPATCHER_STALE_AFTER_S
        down = await http.get("/api/v1/health/ready")
        assert down.status_code == 503, down.text
        assert "dispatcher" in down.json()["down"]
