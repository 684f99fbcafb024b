"""Monthly time partitions of the append-only tables: naming, listing, creating, re-homing.

`events`, `decisions` and `incident_transitions` are range-partitioned by the time the
database assigned to each row, one partition per UTC month, plus a DEFAULT partition so an
insert never fails for lack of a partition. Rows that land in the default (nobody created
their month ahead of time) are moved into a monthly partition of their own by
`rehome_default`, because a default partition holding rows of a month blocks creating that
month's partition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import Column, DateTime, func
from sqlmodel import Field

from models.base import utcnow

# Each partitioned table and the server-assigned time it is partitioned by.
PARTITION_KEYS: dict[str, str] = {
    "events": "received_at",
    "decisions": "created_at",
    "incident_transitions": "at",
}
_PARTITION_NAME = re.compile(r"^(events|decisions|incident_transitions)_(p\d{4}_\d{2}|default)$")
_LIST = """
SELECT c.relname AS name, bounds[1]::timestamptz AS lower, bounds[2]::timestamptz AS upper,
       c.reltuples::bigint AS rows
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)') AS bounds
WHERE i.inhparent = $1::regclass
ORDER BY lower NULLS LAST
"""
_COLUMNS = """
SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
"""


@dataclass(frozen=True)
class Partition:
    """One partition of a partitioned table; `lower`/`upper` are None for the default."""

    name: str
    lower: datetime | None
    upper: datetime | None
    rows: int
    # Whether `rows` is the planner's estimate (pg_class.reltuples) rather than a count.
    estimated: bool

    def describe(self) -> str:
        """Return the name with its row count, e.g. `events_p2026_01 (~1200 rows)`."""
        return f"{self.name} ({'~' if self.estimated else ''}{self.rows} rows)"


def partition_time_field() -> Any:
    """Return the database-assigned timestamp a table is partitioned by (part of its key)."""
    return Field(
        default_factory=utcnow,
        sa_column=Column(
            DateTime(timezone=True), primary_key=True, nullable=False, server_default=func.now()
        ),
    )


def is_partition(name: str | None) -> bool:
    """Tell whether a table name is one of the partitions this module creates."""
    return name is not None and _PARTITION_NAME.match(name) is not None


def include_in_autogenerate(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic `include_name` hook: compare the partitioned tables, not their partitions."""
    del parent_names  # part of Alembic's hook signature
    return not (type_ == "table" and is_partition(name))


def month_start(at: datetime) -> datetime:
    """Return the first instant of the UTC month containing `at`."""
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(month: datetime, count: int) -> datetime:
    """Return the first instant of the UTC month `count` months after `month`."""
    index = month.year * 12 + month.month - 1 + count
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(table: str, month: datetime) -> str:
    """Return the name of `table`'s partition for the UTC month starting at `month`."""
    return f"{table}_p{month:%Y_%m}"


async def list_partitions(conn: asyncpg.Connection, table: str) -> list[Partition]:
    """Return `table`'s partitions, oldest first, the default partition last."""
    partitions = []
    for row in await conn.fetch(_LIST, table):
        rows, estimated = row["rows"], True
        if rows < 0:
            # Never analysed: autovacuum analyses a partition once it has some volume, so
            # this one is small or new and counting it is cheap.
            rows, estimated = await conn.fetchval(f"SELECT count(*) FROM {row['name']}"), False
        partitions.append(Partition(row["name"], row["lower"], row["upper"], rows, estimated))
    return partitions


async def create_partition(conn: asyncpg.Connection, table: str, month: datetime) -> str:
    """Create `table`'s partition for one UTC month; return its name."""
    name = partition_name(table, month)
    await conn.execute(
        f"CREATE TABLE {name} PARTITION OF {table} "
        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{add_months(month, 1).isoformat()}')"
    )
    return name


async def months_in_default(conn: asyncpg.Connection, table: str) -> list[datetime]:
    """Return the UTC months that have rows in `table`'s default partition."""
    key = PARTITION_KEYS[table]
    rows = await conn.fetch(
        f"SELECT DISTINCT date_trunc('month', {key}, 'UTC') AS month FROM {table}_default "
        "ORDER BY month"
    )
    return [month_start(row["month"]) for row in rows]


async def rehome_default(conn: asyncpg.Connection, table: str) -> list[str]:
    """Move the default partition's rows into monthly partitions; return those created.

    Rows are never deleted: the default partition is detached, a fresh empty one takes its
    place, the rows are inserted again through the parent (routing them to their new
    partitions) and the detached table is dropped whole, so the append-only trigger holds.
    """
    async with conn.transaction():
        months = await months_in_default(conn, table)
        if not months:
            return []
        moving = f"{table}_rehoming"
        await conn.execute(f"ALTER TABLE {table} DETACH PARTITION {table}_default")
        await conn.execute(f"ALTER TABLE {table}_default RENAME TO {moving}")
        await conn.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        created = [await create_partition(conn, table, month) for month in months]
        columns = await conn.fetchval(_COLUMNS, table)
        await conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {moving}")
        await conn.execute(f"DROP TABLE {moving}")
    return created


async def ensure_partitions(
    conn: asyncpg.Connection, table: str, months: list[datetime]
) -> list[str]:
    """Create the missing partitions of `months` (and of stray default rows); return them."""
    created = await rehome_default(conn, table)
    existing = {p.lower for p in await list_partitions(conn, table)}
    for month in months:
        if month in existing or partition_name(table, month) in created:
            continue
        try:
            async with conn.transaction():
                created.append(await create_partition(conn, table, month))
        except asyncpg.CheckViolationError:
            # A row of this month reached the default partition since the re-homing above.
            created += await rehome_default(conn, table)
    return created
