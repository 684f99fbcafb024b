"""`awfdrs retention`: drop whole monthly partitions older than a cut, never single rows.

The append-only trigger keeps rejecting UPDATE and DELETE on every partition; retention only
detaches and drops partitions that lie entirely before the cut, so the month containing the
cut is always kept. Idempotency and decision keys go with the partition holding their row, in
the same transaction: a key is remembered exactly as long as its row is stored, and a key
whose row was dropped is accepted again as new. A partition that still holds events waiting
in the outbox or in an unreplayed dead letter is held back, so retention never loses work the
system still owes. It also creates the coming months' partitions and moves rows that reached
a DEFAULT partition into partitions of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from models.partitions import (
    PARTITION_KEYS,
    Partition,
    add_months,
    ensure_partitions,
    list_partitions,
    month_start,
    months_in_default,
    partition_name,
)
from settings import Settings

MONTHS_AHEAD = 3
# Two retention runs at once would race each other's DDL; the second one stops instead.
_RUN_LOCK = "hashtext('awfdrs retention')"
_KEY_PRUNES = {
    "events": "DELETE FROM event_keys k USING {p} e WHERE k.tenant_id = e.tenant_id "
    "AND k.idempotency_key = e.idempotency_key AND k.event_id = e.id",
    "decisions": "DELETE FROM decision_keys k USING {p} d WHERE k.incident_id = d.incident_id "
    "AND k.decision_key = d.decision_key AND k.decision_id = d.id",
}
_HOLDS = {
    "events": (
        (
            "event(s) still waiting in the outbox",
            "SELECT count(*) FROM event_outbox o JOIN {p} e ON e.id = o.event_id",
        ),
        (
            "event(s) in unreplayed dead letters",
            "SELECT count(*) FROM dead_letters d CROSS JOIN LATERAL unnest(d.event_ids) AS x(id) "
            "JOIN {p} e ON e.id = x.id WHERE d.replayed_at IS NULL",
        ),
    ),
}
_AGE = re.compile(r"^\s*(\d+)\s*d?\s*$")
_BUSY = "busy: its lock was not granted in time; run retention again"
# DDL waiting for a table lock makes every later insert queue behind it: give up quickly.
LOCK_TIMEOUT_MS = 3000
_SESSION = {"statement_timeout": "0", "application_name": "awfdrs retention"}


class RetentionBusy(RuntimeError):
    """Another retention run holds the lock."""


@dataclass
class TableReport:
    """What retention did (or, in a dry run, would do) to one partitioned table."""

    table: str
    created: list[str] = field(default_factory=list)
    dropped: list[Partition] = field(default_factory=list)
    kept: list[Partition] = field(default_factory=list)
    # Older than the cut, but kept: the partition and why.
    held: list[tuple[Partition, str]] = field(default_factory=list)
    keys_pruned: int = 0


@dataclass(frozen=True)
class RetentionReport:
    """The outcome of one retention run over every partitioned table."""

    cut: datetime
    dry_run: bool
    tables: list[TableReport]

    @property
    def complete(self) -> bool:
        """Tell whether no expired partition was left behind because its lock was busy."""
        return not any(reason == _BUSY for t in self.tables for _, reason in t.held)

    def lines(self) -> list[str]:
        """Return the report as lines of text for the operator."""
        drop, create = ("would drop", "would create") if self.dry_run else ("dropped", "created")
        lines = [f"cut {self.cut.isoformat()}: partitions entirely before it are dropped"]
        for t in self.tables:
            dropped = ", ".join(p.describe() for p in t.dropped) or "nothing"
            if t.dropped and not self.dry_run and t.table in _KEY_PRUNES:
                dropped += f"; {t.keys_pruned} de-duplication keys went with them"
            lines.append(f"{t.table}: {drop} {dropped}")
            lines.append(f"{t.table}: kept {', '.join(p.describe() for p in t.kept)}")
            lines += [f"{t.table}: held back {p.describe()}: {why}" for p, why in t.held]
            if t.created:
                lines.append(f"{t.table}: {create} {', '.join(t.created)}")
        return lines


def parse_age(text: str) -> timedelta:
    """Parse an age in days such as `90d` (or `90`); at least one day."""
    match = _AGE.match(text)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"{text!r} is not an age in days such as 90d")
    return timedelta(days=int(match.group(1)))


async def apply_retention(
    settings: Settings, *, older_than: timedelta, dry_run: bool = False
) -> RetentionReport:
    """Run retention on the configured database over a connection of its own."""
    conn = await asyncpg.connect(settings.plain_database_url, server_settings=_SESSION)
    try:
        return await run_retention(conn, older_than=older_than, dry_run=dry_run)
    finally:
        await conn.close()


async def run_retention(
    conn: asyncpg.Connection,
    *,
    older_than: timedelta,
    dry_run: bool = False,
    months_ahead: int = MONTHS_AHEAD,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> RetentionReport:
    """Create the coming partitions and drop every partition entirely older than the cut."""
    if not await conn.fetchval(f"SELECT pg_try_advisory_lock({_RUN_LOCK})"):
        raise RetentionBusy("another `awfdrs retention` is running")
    await conn.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
    try:
        now: datetime = await conn.fetchval("SELECT now()")
        cut = now - older_than
        coming = [add_months(month_start(now), n) for n in range(months_ahead + 1)]
        tables = [
            await _retain(conn, table, cut=cut, coming=coming, dry_run=dry_run)
            for table in PARTITION_KEYS
        ]
    finally:
        await conn.execute(f"RESET lock_timeout; SELECT pg_advisory_unlock({_RUN_LOCK})")
    return RetentionReport(cut, dry_run, tables)


async def _retain(
    conn: asyncpg.Connection, table: str, *, cut: datetime, coming: list[datetime], dry_run: bool
) -> TableReport:
    report = TableReport(table)
    if dry_run:
        report.created = await _missing(conn, table, coming)
    else:
        report.created = await ensure_partitions(conn, table, coming)
    for partition in await list_partitions(conn, table):
        if partition.upper is None or partition.upper > cut:
            report.kept.append(partition)
            continue
        if dry_run:
            reason = await _hold_reason(conn, table, partition)
        else:
            reason = await _drop(conn, report, partition)
        if reason:
            report.held.append((partition, reason))
        else:
            report.dropped.append(partition)
    return report


async def _missing(conn: asyncpg.Connection, table: str, months: list[datetime]) -> list[str]:
    existing = {p.lower for p in await list_partitions(conn, table)}
    wanted = sorted({*months, *await months_in_default(conn, table)})
    return [partition_name(table, m) for m in wanted if m not in existing]


async def _hold_reason(conn: asyncpg.Connection, table: str, partition: Partition) -> str | None:
    reasons = []
    for what, query in _HOLDS.get(table, ()):
        if count := await conn.fetchval(query.format(p=partition.name)):
            reasons.append(f"{count} {what}")
    return "; ".join(reasons) or None


async def _drop(conn: asyncpg.Connection, report: TableReport, partition: Partition) -> str | None:
    """Prune its keys, detach and drop it in one transaction; or say why it must stay."""
    table, pruned = report.table, 0
    try:
        async with conn.transaction():
            # Checked in the transaction that drops it, so nothing can start to need it between.
            if reason := await _hold_reason(conn, table, partition):
                return reason
            if table in _KEY_PRUNES:
                status = await conn.execute(_KEY_PRUNES[table].format(p=partition.name))
                pruned = int(status.split()[-1])
            await conn.execute(f"ALTER TABLE {table} DETACH PARTITION {partition.name}")
            await conn.execute(f"DROP TABLE {partition.name}")
    except asyncpg.LockNotAvailableError:
        return _BUSY
    report.keys_pruned += pruned
    return None
