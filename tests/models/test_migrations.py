"""The migration matches the models, round-trips, and makes audit tables append-only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from models.base import metadata
from models.migrate import downgrade_database, upgrade_database
from models.partitions import include_in_autogenerate
from settings import Settings, load_settings
from tests.conftest import TenantCredentials

TABLES = {
    "tenants",
    "api_keys",
    "workflows",
    "vendors",
    "events",
    "event_outbox",
    "incidents",
    "decisions",
    "actions",
    "kill_switches",
    "incident_transitions",
    "dead_letters",
    "event_keys",
    "decision_keys",
    "tenant_egress",
    "maintenance_windows",
    "signing_secrets",
    "responder_secrets",
    "escalation_policies",
    "responder_receipts",
    "operator_actions",
}
PARTITIONED = ("events", "decisions", "incident_transitions")


@pytest.fixture
async def scratch_database(settings: Settings) -> AsyncIterator[str]:
    """An empty database of its own, dropped afterwards."""
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.plain_database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = settings.plain_database_url.rsplit("/", 1)[0]
    yield load_settings(database_url=f"{base}/{name}").async_database_url
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


async def _tables(url: str) -> set[str]:
    """The tables of the schema, counting a partitioned table once (not its partitions)."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind IN ('r', 'p') AND NOT relispartition"
        )
    finally:
        await conn.close()
    return {row["relname"] for row in rows} - {"alembic_version"}


async def test_upgrade_downgrade_upgrade_round_trip(scratch_database: str) -> None:
    await asyncio.to_thread(upgrade_database, scratch_database)
    assert await _tables(scratch_database) == TABLES
    await asyncio.to_thread(downgrade_database, scratch_database)
    assert await _tables(scratch_database) == set()
    await asyncio.to_thread(upgrade_database, scratch_database)
    assert await _tables(scratch_database) == TABLES


async def test_models_and_migration_agree(settings: Settings) -> None:
    def diff(connection: Connection) -> list[object]:
        # Partitions are created at run time, not modelled; Alembic's env skips them the same way.
        context = MigrationContext.configure(
            connection, opts={"include_name": include_in_autogenerate}
        )
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(settings.async_database_url)
    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    await engine.dispose()
    assert differences == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET workflow = 'changed' WHERE id = $1",
        "DELETE FROM events WHERE id = $1",
    ],
)
async def test_events_reject_update_and_delete(
    settings: Settings, tenant: TenantCredentials, statement: str
) -> None:
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        event_id = uuid.uuid4()
        await conn.execute(
            """INSERT INTO events (id, tenant_id, idempotency_key, body_sha256, workflow,
                   event_type, payload, signature, incident_key, remediation, correlation_id,
                   occurred_at)
               VALUES ($1, $2, $3, 'h', 'billing', 'step.failed', '{}', 's', 'k', 'normal',
                   'c', now())""",
            event_id,
            tenant.id,
            f"key-{event_id}",
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement, event_id)
        assert await conn.fetchval("SELECT count(*) FROM events WHERE id = $1", event_id) == 1
    finally:
        await conn.close()


async def test_decisions_reject_update_and_delete(
    settings: Settings, tenant: TenantCredentials
) -> None:
    tenant_id = tenant.id
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        incident_id = await conn.fetchval(
            """INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, severity,
                   title, source_workflow, signature, event_count, attempts, first_seen_at,
                   last_seen_at)
               VALUES (gen_random_uuid(), $1, 'incident:x', 'run-1', 'open', 'high', '',
                   'billing', 'sig', 1, 0, now(), now()) RETURNING id""",
            tenant_id,
        )
        await conn.execute(
            """INSERT INTO decisions (id, tenant_id, incident_id, decision_key, decision_type,
                   reasoning, confidence, ai_model, input_digest, output)
               VALUES (gen_random_uuid(), $1, $2, 'classify', 'classification', 'r', 0.9,
                   'mock-detector-v1', 'd', '{}')""",
            tenant_id,
            incident_id,
        )
        scope = "WHERE incident_id = $1"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="UPDATE on decisions"):
            await conn.execute(f"UPDATE decisions SET reasoning = 'rewritten' {scope}", incident_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="DELETE on decisions"):
            await conn.execute(f"DELETE FROM decisions {scope}", incident_id)
    finally:
        await conn.close()


async def _seed_0003(conn: asyncpg.Connection) -> uuid.UUID:
    """One row in each table 0004 rebuilds, the event 200 days old; return the tenant."""
    tenant_id, incident_id, event_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO tenants (id, name, hmac_secret) VALUES ($1, 't', 's')", tenant_id
    )
    await conn.execute(
        """INSERT INTO incidents (id, tenant_id, workflow_id, run_id, title, source_workflow,
               signature, first_seen_at, last_seen_at)
           VALUES ($1, $2, 'incident:x', 'run-1', '', 'billing', 'sig', now(), now())""",
        incident_id,
        tenant_id,
    )
    await conn.execute(
        """INSERT INTO events (id, tenant_id, idempotency_key, body_sha256, workflow, event_type,
               signature, correlation_id, occurred_at, received_at)
           VALUES ($1, $2, 'k1', 'h', 'billing', 'step.failed', 's', 'c', now(),
               now() - interval '200 days')""",
        event_id,
        tenant_id,
    )
    await conn.execute(
        """INSERT INTO decisions (id, tenant_id, incident_id, decision_key, decision_type,
               reasoning, confidence, ai_model, input_digest)
           VALUES (gen_random_uuid(), $1, $2, 'classify', 'classification', 'r', 0.9, 'm', 'd')""",
        tenant_id,
        incident_id,
    )
    await conn.execute(
        "INSERT INTO incident_transitions (tenant_id, incident_id, status) VALUES ($1, $2, 'open')",
        tenant_id,
        incident_id,
    )
    return tenant_id


async def _layout(conn: asyncpg.Connection) -> dict[str, tuple[str, int]]:
    """Each rebuilt table's kind ('p' partitioned, 'r' plain) and row count."""
    kind = "SELECT relkind::text FROM pg_class WHERE oid = $1::regclass"
    return {
        table: (
            await conn.fetchval(kind, table),
            await conn.fetchval(f"SELECT count(*) FROM {table}"),
        )
        for table in PARTITIONED
    }


async def test_rows_survive_upgrade_and_downgrade(scratch_database: str) -> None:
    await asyncio.to_thread(upgrade_database, scratch_database, "0003")
    conn = await asyncpg.connect(scratch_database.replace("+asyncpg", ""))
    try:
        tenant_id = await _seed_0003(conn)
        await asyncio.to_thread(upgrade_database, scratch_database)
        assert await _layout(conn) == dict.fromkeys(PARTITIONED, ("p", 1))
        keys = "SELECT (SELECT count(*) FROM event_keys), (SELECT count(*) FROM decision_keys)"
        assert tuple(await conn.fetchrow(keys)) == (1, 1)
        # The 200-day-old event got a partition of its own month.
        placed = await conn.fetchrow(
            "SELECT tableoid::regclass::text, "
            """to_char(received_at AT TIME ZONE 'UTC', '"events_p"YYYY_MM') FROM events"""
        )
        assert placed[0] == placed[1]
        await asyncio.to_thread(downgrade_database, scratch_database, "0003")
        assert await _layout(conn) == dict.fromkeys(PARTITIONED, ("r", 1))
        # The plain table's unique key and the outbox's foreign key are back.
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                """INSERT INTO events (id, tenant_id, idempotency_key, body_sha256, workflow,
                       event_type, signature, correlation_id, occurred_at)
                   VALUES ($1, $2, 'k1', 'h', 'billing', 'step.failed', 's', 'c', now())""",
                uuid.uuid4(),
                tenant_id,
            )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO event_outbox (event_id, tenant_id, incident_key) VALUES ($1, $2, 'k')",
                uuid.uuid4(),
                tenant_id,
            )
    finally:
        await conn.close()


async def test_workflow_mode_and_skipped_actions_round_trip(scratch_database: str) -> None:
    await asyncio.to_thread(upgrade_database, scratch_database, "0003")
    conn = await asyncpg.connect(scratch_database.replace("+asyncpg", ""))
    try:
        tenant_id = await _seed_0003(conn)
        await asyncio.to_thread(upgrade_database, scratch_database)
        add_workflow = """INSERT INTO workflows (id, tenant_id, name, description, callback_url,
                              retry_policy) VALUES (gen_random_uuid(), $1, $2, '', 'u', '{}')"""
        await conn.execute(add_workflow, tenant_id, "billing")
        assert await conn.fetchval("SELECT mode FROM workflows") == "live"
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE workflows SET mode = 'shadow'")
        await conn.execute(
            """INSERT INTO actions (id, tenant_id, incident_id, action_type, attempt,
                   idempotency_key, status, parameters, result)
               SELECT gen_random_uuid(), tenant_id, id, 'retry', 1, 'k:1', 'skipped_dry_run',
                      '{}', '{}' FROM incidents""",
        )
        await asyncio.to_thread(downgrade_database, scratch_database, "0013")
        assert await conn.fetchval("SELECT status FROM actions") == "cancelled"
        columns = "SELECT count(*) FROM information_schema.columns WHERE table_name = 'workflows'"
        assert await conn.fetchval(columns + " AND column_name = 'mode'") == 0
    finally:
        await conn.close()


async def test_below_threshold_incidents_round_trip(scratch_database: str) -> None:
    await asyncio.to_thread(upgrade_database, scratch_database, "0003")
    conn = await asyncpg.connect(scratch_database.replace("+asyncpg", ""))
    try:
        await _seed_0003(conn)
        await asyncio.to_thread(upgrade_database, scratch_database)
        await conn.execute("UPDATE incidents SET status = 'below_threshold'")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE incidents SET status = 'nearly'")
        await asyncio.to_thread(downgrade_database, scratch_database, "0014")
        assert await conn.fetchval("SELECT status FROM incidents") == "suppressed"
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE incidents SET status = 'below_threshold'")
    finally:
        await conn.close()
