"""`awfdrs retention` drops whole old partitions, keeps newer rows, and immutability holds."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from activities.analysis import AnalysisActivities
from api.services.ingest import WorkflowState, body_digest, prepare_event, store_events
from cli import main
from models.partitions import add_months, list_partitions, month_start, partition_name
from models.retention import RetentionBusy, run_retention
from models.schemas.events import EventIn
from rules.policy import load_policies
from settings import Settings
from workflows.activity_payloads import DecisionRequest

NINETY_DAYS = timedelta(days=90)
APPEND_ONLY = ("events", "decisions", "incident_transitions")


@pytest.fixture
async def db(isolated_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a freshly migrated database of this test's own."""
    conn = await asyncpg.connect(isolated_settings.plain_database_url)
    yield conn
    await conn.close()


async def _tenant(conn: asyncpg.Connection) -> uuid.UUID:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), $1) RETURNING id",
        f"tenant-{uuid.uuid4().hex[:8]}",
    )


async def _incident(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> uuid.UUID:
    return await conn.fetchval(  # type: ignore[no-any-return]
        """INSERT INTO incidents (id, tenant_id, workflow_id, run_id, title, source_workflow,
               signature, first_seen_at, last_seen_at)
           VALUES (gen_random_uuid(), $1, $2, 'run-1', '', 'billing', 'sig', now(), now())
           RETURNING id""",
        tenant_id,
        f"incident:{uuid.uuid4().hex}",
    )


async def _event(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    received_at: datetime,
    *,
    key: str | None = None,
    body_sha256: str = "h",
) -> uuid.UUID:
    """Store an event (and its key) as if the intake had received it at `received_at`."""
    event_id, key = uuid.uuid4(), key or f"key-{uuid.uuid4().hex}"
    await conn.execute(
        """INSERT INTO events (id, tenant_id, idempotency_key, body_sha256, workflow, event_type,
               signature, incident_key, correlation_id, occurred_at, received_at)
           VALUES ($1, $2, $3, $4, 'billing-sync', 'step.failed', 's', 'k', 'c', $5, $5)""",
        event_id,
        tenant_id,
        key,
        body_sha256,
        received_at,
    )
    await conn.execute(
        "INSERT INTO event_keys VALUES ($1, $2, $3, $4)", tenant_id, key, event_id, received_at
    )
    return event_id


async def _decision(
    conn: asyncpg.Connection, incident_id: uuid.UUID, key: str, created_at: datetime
) -> None:
    decision_id = await conn.fetchval(
        """INSERT INTO decisions (id, tenant_id, incident_id, decision_key, decision_type,
               reasoning, confidence, ai_model, input_digest, created_at)
           SELECT gen_random_uuid(), tenant_id, id, $2, 'classification', 'r', 0.9, 'm', 'd', $3
           FROM incidents WHERE id = $1 RETURNING id""",
        incident_id,
        key,
        created_at,
    )
    await conn.execute(
        "INSERT INTO decision_keys VALUES ($1, $2, $3)", incident_id, key, decision_id
    )


async def _transition(conn: asyncpg.Connection, incident_id: uuid.UUID, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO incident_transitions (tenant_id, incident_id, status, at) "
        "SELECT tenant_id, id, 'open', $2 FROM incidents WHERE id = $1",
        incident_id,
        at,
    )


async def _names(conn: asyncpg.Connection, table: str) -> set[str]:
    return {p.name for p in await list_partitions(conn, table)}


async def _old_and_new_rows(conn: asyncpg.Connection) -> tuple[datetime, datetime]:
    """Rows of every append-only table 200 days ago and now; return both times."""
    now: datetime = await conn.fetchval("SELECT now()")
    old = now - timedelta(days=200)
    tenant_id = await _tenant(conn)
    incident_id = await _incident(conn, tenant_id)
    for at, label in ((old, "old"), (now, "new")):
        await _event(conn, tenant_id, at, key=label)
        await _decision(conn, incident_id, label, at)
        await _transition(conn, incident_id, at)
    return old, now


async def test_retention_drops_old_partitions_and_keeps_newer_rows(
    db: asyncpg.Connection,
) -> None:
    old, now = await _old_and_new_rows(db)
    report = await run_retention(db, older_than=NINETY_DAYS)
    for table in APPEND_ONLY:
        old_partition = partition_name(table, month_start(old))
        assert old_partition not in await _names(db, table)
        assert await db.fetchval(f"SELECT to_regclass('{old_partition}')") is None
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 1
        assert partition_name(table, month_start(now)) in await _names(db, table)
        by_table = {t.table: t for t in report.tables}
        assert old_partition in {p.name for p in by_table[table].dropped}
    assert await db.fetch("SELECT idempotency_key FROM event_keys") == [("new",)]
    assert await db.fetch("SELECT decision_key FROM decision_keys") == [("new",)]


async def test_the_partition_holding_the_cut_is_kept(db: asyncpg.Connection) -> None:
    now: datetime = await db.fetchval("SELECT now()")
    month = month_start(now - timedelta(days=150))
    older_than_cut = month + timedelta(days=1)
    await _event(db, await _tenant(db), older_than_cut)
    cut = month + timedelta(days=2)
    report = await run_retention(db, older_than=now - cut)
    assert partition_name("events", month) in {p.name for p in report.tables[0].kept}
    assert report.tables[0].dropped == []
    assert await db.fetchval("SELECT count(*) FROM events") == 1


@pytest.mark.parametrize("table", APPEND_ONLY)
async def test_update_and_delete_stay_rejected_on_remaining_partitions(
    db: asyncpg.Connection, table: str
) -> None:
    _, now = await _old_and_new_rows(db)
    await run_retention(db, older_than=NINETY_DAYS)
    partition = partition_name(table, month_start(now))
    for target in (table, partition):
        for statement in (f"UPDATE {target} SET tenant_id = tenant_id", f"DELETE FROM {target}"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match=f"on {table} is not"):
                await db.execute(statement)
    assert await db.fetchval(f"SELECT count(*) FROM {partition}") == 1


async def test_idempotency_is_exact_until_the_keys_partition_is_dropped(
    db: asyncpg.Connection,
) -> None:
    tenant_id = await _tenant(db)
    event = EventIn.model_validate(
        {"workflow": "billing-sync", "event_type": "step.failed", "error": {"code": "TIMEOUT"}}
    )

    async def send(key: str) -> tuple[uuid.UUID, int]:
        prepared = prepare_event(
            event,
            key=key,
            tenant_id=tenant_id,
            catalog=load_policies().error_codes,
            workflow=WorkflowState(True, frozenset()),
        )
        [outcome] = await store_events(
            conn=db, tenant_id=tenant_id, events=[prepared], correlation_id="c"
        )
        return outcome.event_id, outcome.status

    first, status = await send("fresh")
    assert status == 202
    assert await send("fresh") == (first, 200)
    now: datetime = await db.fetchval("SELECT now()")
    old_id = await _event(
        db, tenant_id, now - timedelta(days=200), key="aged", body_sha256=body_digest(event)
    )
    # Stored months ago, in another partition: the key still replays, across months.
    assert await send("aged") == (old_id, 200)
    await run_retention(db, older_than=NINETY_DAYS)
    # Its partition is gone, and the key with it: the same key is now a new event.
    new_id, status = await send("aged")
    assert (status, new_id != old_id) == (202, True)
    assert await send("fresh") == (first, 200)
    count = "SELECT count(*) FROM events WHERE idempotency_key = $1"
    assert [await db.fetchval(count, key) for key in ("fresh", "aged")] == [1, 1]


async def test_a_decision_retried_in_a_later_month_is_stored_once(
    isolated_settings: Settings, db: asyncpg.Connection
) -> None:
    incident_id = await _incident(db, tenant_id := await _tenant(db))
    now: datetime = await db.fetchval("SELECT now()")
    # The first attempt stored it last month; the retry runs now.
    await _decision(db, incident_id, "classify", add_months(month_start(now), -1))
    engine = create_async_engine(isolated_settings.async_database_url)
    activities = AnalysisActivities(engine=engine, policies=load_policies())
    request = DecisionRequest(
        tenant_id=str(tenant_id),
        incident_id=str(incident_id),
        workflow_id="wf",
        source_workflow="billing",
        step=None,
        error_code="VENDOR_TIMEOUT",
        error_message=None,
        vendor=None,
        event_count=1,
        failure_count=1,
    )
    try:
        await activities.classify(request)
        await activities.classify(request)
    finally:
        await engine.dispose()
    assert await db.fetchval("SELECT count(*) FROM decisions") == 1


async def test_inserts_without_a_partition_succeed_and_get_one_later(
    db: asyncpg.Connection,
) -> None:
    now: datetime = await db.fetchval("SELECT now()")
    tenant_id = await _tenant(db)
    # Beyond the months created ahead: the rows land in the DEFAULT partition.
    far = add_months(month_start(now), 9) + timedelta(days=3)
    next_wanted = add_months(month_start(now), 4) + timedelta(days=3)
    for at in (far, next_wanted):
        await _event(db, tenant_id, at)
    assert await db.fetchval("SELECT count(*) FROM events_default") == 2
    # Creating the month ahead a default row belongs to would fail; retention re-homes it.
    report = await run_retention(db, older_than=NINETY_DAYS, months_ahead=4)
    wanted = {partition_name("events", month_start(at)) for at in (far, next_wanted)}
    assert wanted <= set(report.tables[0].created)
    assert await db.fetchval("SELECT count(*) FROM events_default") == 0
    placed = await db.fetch("SELECT tableoid::regclass::text FROM events")
    assert {row[0] for row in placed} == wanted


async def test_partitions_with_undelivered_events_are_held_back(db: asyncpg.Connection) -> None:
    now: datetime = await db.fetchval("SELECT now()")
    old = now - timedelta(days=200)
    event_id = await _event(db, tenant_id := await _tenant(db), old)
    await db.execute(
        "INSERT INTO event_outbox (event_id, tenant_id, incident_key) VALUES ($1, $2, 'k')",
        event_id,
        tenant_id,
    )
    await db.execute(
        """INSERT INTO dead_letters (id, tenant_id, incident_key, event_ids, failures,
               first_queued_at) VALUES (gen_random_uuid(), $1, 'k', $2, 10, now())""",
        tenant_id,
        [event_id],
    )
    report = await run_retention(db, older_than=NINETY_DAYS)
    [(held, reason)] = report.tables[0].held
    assert held.name == partition_name("events", month_start(old))
    assert reason == (
        "1 event(s) still waiting in the outbox; 1 event(s) in unreplayed dead letters"
    )
    assert await db.fetchval("SELECT count(*) FROM event_keys") == 1
    await db.execute("DELETE FROM event_outbox")
    await db.execute("UPDATE dead_letters SET replayed_at = now(), replayed_by = 'ops'")
    await run_retention(db, older_than=NINETY_DAYS)
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_a_busy_partition_is_left_whole_for_the_next_run(
    isolated_settings: Settings, db: asyncpg.Connection
) -> None:
    old, _ = await _old_and_new_rows(db)
    busy = partition_name("events", month_start(old))
    await run_retention(db, older_than=timedelta(days=3650))  # gives the old rows their month
    reader = await asyncpg.connect(isolated_settings.plain_database_url)
    try:
        async with reader.transaction():
            await reader.execute(f"LOCK TABLE {busy} IN ACCESS SHARE MODE")
            report = await run_retention(db, older_than=NINETY_DAYS, lock_timeout_ms=200)
    finally:
        await reader.close()
    assert (report.complete, [p.name for p, _ in report.tables[0].held]) == (False, [busy])
    # Its keys were pruned in the transaction that could not drop it, so they are back.
    assert await db.fetchval("SELECT count(*) FROM event_keys") == 2
    assert busy in await _names(db, "events")
    assert (await run_retention(db, older_than=NINETY_DAYS)).complete


async def test_a_second_run_at_the_same_time_stops(
    isolated_settings: Settings, db: asyncpg.Connection
) -> None:
    other = await asyncpg.connect(isolated_settings.plain_database_url)
    try:
        await other.execute("SELECT pg_advisory_lock(hashtext('awfdrs retention'))")
        with pytest.raises(RetentionBusy):
            await run_retention(db, older_than=NINETY_DAYS)
    finally:
        await other.close()


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """`awfdrs` configures the root logger; give the next tests theirs back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("keep_logging")
async def test_cli_reports_and_defaults_to_the_setting(
    isolated_settings: Settings,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, _ = await _old_and_new_rows(db)
    old_partition = partition_name("events", month_start(old))
    monkeypatch.setenv("AWFDRS_DATABASE_URL", isolated_settings.database_url)
    monkeypatch.setenv("AWFDRS_RETENTION_DAYS", "365")
    # The command runs its own event loop, so it gets a thread of its own here.
    await asyncio.to_thread(main, ["retention"])
    assert f"events: dropped nothing\nevents: kept {old_partition} (" in capsys.readouterr().out
    await asyncio.to_thread(main, ["retention", "--older-than", "90d", "--dry-run"])
    assert f"events: would drop {old_partition} (1 rows)" in capsys.readouterr().out
    assert old_partition in await _names(db, "events")
    await asyncio.to_thread(main, ["retention", "--older-than", "90d"])
    out = capsys.readouterr().out
    assert f"events: dropped {old_partition} (1 rows); 1 de-duplication keys" in out
    assert old_partition not in await _names(db, "events")
    with pytest.raises(SystemExit):
        main(["retention", "--older-than", "soon"])
