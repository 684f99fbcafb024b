"""Projection writes on the worker's engine (autocommit, no pre-ping) against real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.records import IncidentRecords, write_action
from models.db import create_engine
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.incidents import failure, store_events
from vocabulary import ActionStatus, ActionType, IncidentStatus, Severity
from workflows.activity_payloads import ActionRequest, RecordIncidentRequest


@pytest.fixture
async def worker_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine configured as the worker configures it."""
    engine = create_engine(settings, pool_size=2, single_statement_writes=True)
    yield engine
    await engine.dispose()


async def _incident(engine: AsyncEngine, tenant: TenantCredentials) -> str:
    workflow_id = f"incident:{tenant.id}:{uuid.uuid4().hex}"
    database_url = engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")
    await store_events(database_url, tenant.id, workflow_id, [failure()])
    return await IncidentRecords(engine).record_incident(
        RecordIncidentRequest(
            tenant_id=str(tenant.id),
            workflow_id=workflow_id,
            run_id=uuid.uuid4().hex,
            source_workflow="billing-sync",
            step="charge-card",
            signature=uuid.uuid4().hex,
            error_code="VENDOR_TIMEOUT",
            vendor="stripe",
            status=IncidentStatus.OPEN,
            severity=Severity.HIGH,
            category="transient",
            event_count=1,
            attempts=0,
            first_seen_at=None,
            last_seen_at=None,
        )
    )


async def _drop_connections(settings: Settings, engine: AsyncEngine) -> int:
    """Terminate the engine's server sessions, as a database restart would."""
    async with engine.connect() as conn:
        app_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    admin = await asyncpg.connect(settings.plain_database_url)
    try:
        return int(
            await admin.fetchval("SELECT count(*) FROM pg_terminate_backend($1)", app_pid) or 0
        )
    finally:
        await admin.close()


async def test_an_action_write_survives_a_connection_the_server_dropped(
    settings: Settings, worker_engine: AsyncEngine, tenant: TenantCredentials
) -> None:
    incident_id = await _incident(worker_engine, tenant)
    assert await _drop_connections(settings, worker_engine) == 1
    key = f"{incident_id}:1"
    request = ActionRequest(
        str(tenant.id), incident_id, ActionType.RETRY, 1, key, ActionStatus.RUNNING
    )
    await write_action(worker_engine, request)  # first try meets the dead connection
    await write_action(worker_engine, replace(request, status=ActionStatus.FAILED))
    async with worker_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT status, finished_at IS NOT NULL FROM actions WHERE idempotency_key = :k"
                ),
                {"k": key},
            )
        ).all()
    assert [tuple(r) for r in rows] == [("failed", True)]


async def test_a_finished_action_never_moves_backwards(
    worker_engine: AsyncEngine, tenant: TenantCredentials
) -> None:
    incident_id = await _incident(worker_engine, tenant)
    key = f"{incident_id}:1"
    for status in (
        ActionStatus.PENDING,
        ActionStatus.SUCCEEDED,
        ActionStatus.RUNNING,
        ActionStatus.PENDING,
    ):
        await write_action(
            worker_engine,
            ActionRequest(str(tenant.id), incident_id, ActionType.RETRY, 1, key, status),
        )
    async with worker_engine.connect() as conn:
        status = (
            await conn.execute(
                text("SELECT status FROM actions WHERE idempotency_key = :k"), {"k": key}
            )
        ).scalar_one()
    assert status == "succeeded"


async def test_an_action_write_moves_forward_with_its_timestamps_and_only_its_own_incident(
    worker_engine: AsyncEngine, tenant: TenantCredentials
) -> None:
    mine, other = await _incident(worker_engine, tenant), await _incident(worker_engine, tenant)
    key = f"{mine}:1"

    async def write(incident_id: str, status: ActionStatus) -> None:
        request = ActionRequest(str(tenant.id), incident_id, ActionType.RETRY, 1, key, status)
        await write_action(worker_engine, request)

    async def row() -> tuple[str, bool, bool]:
        async with worker_engine.connect() as conn:
            found = (
                await conn.execute(
                    text(
                        "SELECT status, started_at IS NOT NULL AS started,"
                        " finished_at IS NOT NULL AS finished FROM actions"
                        " WHERE idempotency_key = :k"
                    ),
                    {"k": key},
                )
            ).one()
        return found.status, found.started, found.finished

    await write(mine, ActionStatus.PENDING)
    assert await row() == ("pending", False, False)
    await write(mine, ActionStatus.RUNNING)
    assert await row() == ("running", True, False)
    await write(other, ActionStatus.FAILED)  # another incident's request naming this key
    assert await row() == ("running", True, False)
    await write(mine, ActionStatus.FAILED)
    assert await row() == ("failed", True, True)
