"""time partitions for events, decisions and incident transitions; idempotency key tables

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

The three append-only tables become range-partitioned by the time the database assigned to
each row (one partition per UTC month, three months created ahead, plus a DEFAULT partition so
an insert never fails), so `awfdrs retention` can drop whole months while the row trigger
still rejects every UPDATE and DELETE.

A unique constraint on a partitioned table must include the partition key, so the two
de-duplication keys move to unpartitioned tables written in the same statement as the row:
`event_keys (tenant_id, idempotency_key)` and `decision_keys (incident_id, decision_key)`.

`event_outbox.event_id` loses its foreign key: a foreign key must reference a unique key of
the partitioned table, which now includes `received_at`, and the outbox does not carry it.
The outbox row is written by the same statement as its event, and the retention command keeps
any partition an outbox row or an unreplayed dead letter still points into, which is the
guarantee the foreign key gave.

Each table is rebuilt in place: the new one takes the old one's columns, defaults, checks,
foreign keys and secondary indexes from the catalog (so this revision follows whatever 0001-0003
made of them), existing rows are copied, and the old table is dropped. Downgrade does the same
the other way and restores the plain tables' unique keys and the outbox foreign key.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTITION_KEYS = {"events": "received_at", "decisions": "created_at", "incident_transitions": "at"}
MONTHS_AHEAD = 3
TRANSITION_SEQUENCE = "incident_transitions_id_seq"
# The de-duplication keys of the plain tables, which a partitioned table cannot have.
PLAIN_UNIQUES = {
    "events": ("uq_events_tenant_id_idempotency_key", "tenant_id, idempotency_key"),
    "decisions": ("uq_decisions_incident_id_decision_key", "incident_id, decision_key"),
}

# A partition names its partitioned table: that is the table the statement was written for.
REJECT_MUTATION = """
CREATE OR REPLACE FUNCTION awfdrs_reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the table is append-only', TG_OP,
        coalesce(pg_partition_root(TG_RELID), TG_RELID)::regclass
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""
REJECT_MUTATION_0001 = """
CREATE OR REPLACE FUNCTION awfdrs_reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""


def _create_key_tables() -> None:
    op.create_table('event_keys',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'idempotency_key', name=op.f('pk_event_keys'))
    )
    op.create_table('decision_keys',
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('decision_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('decision_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('incident_id', 'decision_key', name=op.f('pk_decision_keys'))
    )


def _month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def _add_months(month: datetime, count: int) -> datetime:
    index = month.year * 12 + month.month - 1 + count
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _fetch(sql: str, **params: Any) -> list[Any]:
    return list(op.get_bind().execute(sa.text(sql), params).all())


def _secondary_indexes(table: str) -> list[tuple[str, str]]:
    """Name and CREATE INDEX statement of each index that backs no constraint."""
    rows = _fetch(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = CAST(:t AS regclass) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        t=table,
    )
    # A partitioned table's index reads `ON ONLY t`: recreated, it must cover the partitions.
    return [(name, definition.replace(" ON ONLY ", " ON ", 1)) for name, definition in rows]


def _foreign_keys(table: str) -> list[tuple[str, str]]:
    return [tuple(row) for row in _fetch(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f'",
        t=table,
    )]


def _create_partitions(table: str, source: str) -> None:
    """Monthly partitions from the oldest row's month to three months ahead, plus DEFAULT."""
    ((oldest, now),) = _fetch(f"SELECT min({PARTITION_KEYS[table]}), now() FROM {source}")
    month = _month_start(oldest or now)
    last = _add_months(_month_start(now), MONTHS_AHEAD)
    while month <= last:
        upper = _add_months(month, 1)
        op.execute(
            f"CREATE TABLE {table}_p{month:%Y_%m} PARTITION OF {table} "
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{upper.isoformat()}')"
        )
        month = upper
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")


def _copy(source: str, target: str) -> None:
    (columns,) = _fetch(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped",
        t=target,
    )[0]
    op.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {source}")


def _rebuild(table: str, *, partitioned: bool) -> None:
    """Replace a table by a partitioned (or plain) one with the same columns, keys and rows.

    Keys and indexes are built after the copy, which is faster than maintaining them row by
    row. The tables stay locked meanwhile: migrate a large `events` in a quiet moment.
    """
    indexes, foreign_keys = _secondary_indexes(table), _foreign_keys(table)
    old = f"{table}_{'unpartitioned' if partitioned else 'partitioned'}"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for (name,) in _fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) "
        "AND contype IN ('p', 'u')",
        t=old,
    ):
        op.execute(f"ALTER TABLE {old} DROP CONSTRAINT {name}")
    for name, _ in indexes:
        op.execute(f"DROP INDEX {name}")
    key = PARTITION_KEYS[table]
    op.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING STORAGE INCLUDING COMMENTS)"
        + (f" PARTITION BY RANGE ({key})" if partitioned else "")
    )
    if partitioned:
        _create_partitions(table, old)
    _copy(old, table)
    op.execute(f"DROP TABLE {old}")
    op.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} "
        f"PRIMARY KEY ({f'id, {key}' if partitioned else 'id'})"
    )
    if not partitioned and table in PLAIN_UNIQUES:
        name, columns = PLAIN_UNIQUES[table]
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE ({columns})")
    for name, definition in foreign_keys:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for _, statement in indexes:
        op.execute(statement)
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION awfdrs_reject_mutation()"
    )


def upgrade() -> None:
    op.execute("ALTER TABLE event_outbox DROP CONSTRAINT fk_event_outbox_event_id_events")
    op.execute(f"ALTER SEQUENCE {TRANSITION_SEQUENCE} OWNED BY NONE")
    op.execute(REJECT_MUTATION)
    for table in PARTITION_KEYS:
        _rebuild(table, partitioned=True)
    op.execute(f"ALTER SEQUENCE {TRANSITION_SEQUENCE} OWNED BY incident_transitions.id")
    _create_key_tables()
    op.execute(
        "INSERT INTO event_keys (tenant_id, idempotency_key, event_id, received_at) "
        "SELECT tenant_id, idempotency_key, id, received_at FROM events"
    )
    op.execute(
        "INSERT INTO decision_keys (incident_id, decision_key, decision_id) "
        "SELECT incident_id, decision_key, id FROM decisions"
    )


def downgrade() -> None:
    op.drop_table('decision_keys')
    op.drop_table('event_keys')
    op.execute(f"ALTER SEQUENCE {TRANSITION_SEQUENCE} OWNED BY NONE")
    for table in PARTITION_KEYS:
        _rebuild(table, partitioned=False)
    op.execute(f"ALTER SEQUENCE {TRANSITION_SEQUENCE} OWNED BY incident_transitions.id")
    op.execute(REJECT_MUTATION_0001)
    op.create_foreign_key(
        op.f('fk_event_outbox_event_id_events'), 'event_outbox', 'events', ['event_id'], ['id']
    )
