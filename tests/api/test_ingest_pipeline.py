"""Outbox → dispatcher → IncidentWorkflow, including Temporal and PostgreSQL outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.service import RPCError

from api.app import create_app
from devstack.http_target import CallbackServer, Reply
from devstack.postgres import EmbeddedPostgres
from devstack.temporal import EmbeddedTemporal
from models.migrate import upgrade_database
from settings import Settings
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import failure_event, register_workflow
from worker import activity_set, build_worker
from workflows.converter import DATA_CONVERTER
from workflows.incident_workflow import IncidentWorkflow


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def _new_tenant(http: httpx.AsyncClient) -> TenantCredentials:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    name = f"pipeline-{uuid.uuid4().hex[:8]}"
    created = (await http.post("/api/v1/tenants", json={"name": name}, headers=admin)).json()
    return TenantCredentials(uuid.UUID(created["id"]), name, created["api_key"])


async def _wait_outbox_empty(database_url: str, timeout: float = 60) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while await conn.fetchval("SELECT count(*) FROM event_outbox"):
            assert asyncio.get_running_loop().time() < deadline, "outbox never drained"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def _counted(client: Client, keys: set[str], expected: int, timeout: float = 60) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    total = 0
    while asyncio.get_running_loop().time() < deadline:
        views = [await client.get_workflow_handle(k).query(IncidentWorkflow.status) for k in keys]
        total = sum(v.event_count for v in views)
        if total == expected:
            break
        await asyncio.sleep(0.2)
    return total


@pytest.fixture
async def own_temporal(tmp_path: Path) -> AsyncIterator[EmbeddedTemporal]:
    """A Temporal dev server this test may stop and restart on the same database file."""
    server = EmbeddedTemporal(tmp_path / "temporal", headless=True)
    server.start()
    yield server
    server.stop()


async def test_events_accepted_while_temporal_is_down_all_reach_their_incidents(
    isolated_settings: Settings,
    own_temporal: EmbeddedTemporal,
    activities: Sequence[Callable[..., Any]],
) -> None:
    settings = isolated_settings
    queue = f"outage-{uuid.uuid4().hex}"
    app = create_app(
        settings.model_copy(
            update={
                "temporal_address": own_temporal.address,
                "task_queue": queue,
                "dispatcher_poll_interval_s": 0.2,
            }
        )
    )
    async with app.router.lifespan_context(app), await _client(app) as http:
        tenant = await _new_tenant(http)
        await register_workflow(http, tenant)
        own_temporal.stop()
        keys = set()
        for step in ("a", "b", "c", "d", "e"):
            for _ in range(10):
                response = await http.post(
                    "/api/v1/events", json=failure_event(step=step), headers=tenant.headers
                )
                assert response.status_code == 202, response.text
                keys.add(response.json()["incident_key"])
        await asyncio.sleep(1)
        conn = await asyncpg.connect(settings.plain_database_url)
        waiting = await conn.fetchval(
            "SELECT count(*) FROM event_outbox WHERE tenant_id = $1", tenant.id
        )
        await conn.close()
        assert waiting == 50
        own_temporal.start()
        client = await Client.connect(own_temporal.address, data_converter=DATA_CONVERTER)
        async with (
            activity_set(settings) as own_activities,
            build_worker(client, own_activities, queue),
        ):
            await _wait_outbox_empty(settings.plain_database_url)
            assert await _counted(client, keys, 50) == 50
    assert len(keys) == 5


async def test_a_storm_on_one_signature_is_one_incident_and_few_signals(
    isolated_settings: Settings,
    temporal_client: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = isolated_settings
    queue = f"storm-{uuid.uuid4().hex}"
    app = create_app(settings.model_copy(update={"task_queue": queue}), temporal=temporal_client)
    caplog.set_level(logging.INFO, logger="awfdrs.dispatcher")
    async with (
        app.router.lifespan_context(app),
        await _client(app) as http,
        activity_set(settings) as own_activities,
        build_worker(temporal_client, own_activities, queue),
    ):
        tenant = await _new_tenant(http)
        await register_workflow(http, tenant)
        keys = set()
        for _ in range(2):
            batch = {"events": [failure_event() for _ in range(1000)]}
            response = await http.post("/api/v1/events/batch", json=batch, headers=tenant.headers)
            assert response.json()["accepted"] == 1000
            keys |= {r["incident_key"] for r in response.json()["results"]}
        await _wait_outbox_empty(settings.plain_database_url)
        assert len(keys) == 1
        assert await _counted(temporal_client, keys, 2000) == 2000
        signals = app.state.dispatcher.signals_sent
        runs = [
            w async for w in temporal_client.list_workflows(f'WorkflowId = "{next(iter(keys))}"')
        ]
    assert signals <= 40, f"{signals} signals for 2,000 events"
    assert "outbox pass: " in caplog.text
    assert len({w.run_id for w in runs}) <= 1


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[EmbeddedPostgres]:
    """A migrated PostgreSQL this test may stop and start."""
    tmp_path.chmod(0o755)
    server = EmbeddedPostgres(tmp_path / "pg", durable=True)  # committed rows survive the stop
    server.start()
    await asyncio.to_thread(
        upgrade_database, server.url.replace("postgresql://", "postgresql+asyncpg://")
    )
    yield server
    server.stop()


async def test_postgres_down_answers_503_and_ingestion_resumes_without_restart(
    settings: Settings,
    own_postgres: EmbeddedPostgres,
    temporal_client: Client,
) -> None:
    app = create_app(
        settings.model_copy(update={"database_url": own_postgres.url, "dispatcher_enabled": False}),
        temporal=temporal_client,
    )
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with app.router.lifespan_context(app), await _client(app) as http:
        created = (
            await http.post("/api/v1/tenants", json={"name": "pg-outage"}, headers=admin)
        ).json()
        creds = TenantCredentials(uuid.UUID(created["id"]), "pg-outage", created["api_key"])
        await register_workflow(http, creds)
        assert (
            await http.post("/api/v1/events", json=failure_event(), headers=creds.headers)
        ).status_code == 202
        own_postgres.stop()
        down = await http.post("/api/v1/events", json=failure_event(), headers=creds.headers)
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        assert "postgresql" in down.json()["detail"]
        assert down.headers["Retry-After"]
        own_postgres.start()
        back = await http.post("/api/v1/events", json=failure_event(), headers=creds.headers)
        assert back.status_code == 202, back.text
    conn = await asyncpg.connect(own_postgres.url)
    try:
        events = await conn.fetchval("SELECT count(*) FROM events")
        outbox = await conn.fetchval("SELECT count(*) FROM event_outbox")
    finally:
        await conn.close()
    assert events == outbox == 2


async def test_a_step_succeeded_event_resolves_the_waiting_incident_end_to_end(
    isolated_settings: Settings,
    temporal_client: Client,
) -> None:
    settings = isolated_settings
    queue = f"resolve-{uuid.uuid4().hex}"
    app = create_app(settings.model_copy(update={"task_queue": queue}), temporal=temporal_client)
    slow = {
        "max_attempts": 3,
        "initial_interval_s": 3600,
        "multiplier": 2,
        "max_interval_s": 7200,
        "jitter": 0,
    }
    async with (
        app.router.lifespan_context(app),
        await _client(app) as http,
        activity_set(settings) as own_activities,
        build_worker(temporal_client, own_activities, queue),
        CallbackServer([Reply(503)]) as server,
    ):
        tenant = await _new_tenant(http)
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=slow)
        failed = await http.post("/api/v1/events", json=failure_event(), headers=tenant.headers)
        handle = temporal_client.get_workflow_handle_for(
            IncidentWorkflow.run, failed.json()["incident_key"]
        )
        status = ""
        for _ in range(200):
            with contextlib.suppress(RPCError):
                status = (await handle.query(IncidentWorkflow.status)).status
            if status == "waiting":
                break
            await asyncio.sleep(0.1)
        assert status == "waiting"
        success = failure_event(event_type="step.succeeded", error=None)
        accepted = await http.post("/api/v1/events", json=success, headers=tenant.headers)
        assert accepted.status_code == 202
        result = await asyncio.wait_for(handle.result(), 30)
    assert result.status == "resolved"
    assert result.reason == "a success event arrived for the failed step"
    assert len(server.calls) == 1
