"""The outbox's SQL and the shape of what it carries: claims, settlements, digests, dead letters.

Rows of one incident key leave in sequence order: a claim never takes a row while an earlier
row of its key waits for a retry, and a transaction-scoped advisory lock per key keeps two
dispatchers (one per API replica) from delivering the same key's rows side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from vocabulary import FAILURE_TYPES, EventType, IncidentStatus
from workflows.incident_state import IncidentInput
from workflows.signal_payloads import EventDigest, EventSummary

INCIDENT_PREFIX = "incident:"
RESOLVE_PREFIX = "resolve:"
MAX_TRANSIENT_BACKOFF_S = 10
MAX_FAILURE_BACKOFF_S = 60
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Rows in backoff are few: one pass over them (by `available_at`) replaces a per-row search
# of every earlier row of the key, which a plan without statistics made quadratic in the
# backlog (50 s for a 30,000-row storm on one key). Events are looked up only for the rows
# claimed (the LATERAL's LIMIT keeps it a per-row index lookup), never joined to the backlog.
CLAIM = """
WITH waiting AS (
    SELECT incident_key, min(id) AS first_id FROM event_outbox
    WHERE available_at > now() GROUP BY incident_key
), claimed AS (
    SELECT o.id, o.incident_key, o.tenant_id, o.failures, o.created_at, o.event_id
    FROM event_outbox o
    WHERE o.available_at <= now()
      AND NOT EXISTS (SELECT 1 FROM waiting w
                      WHERE w.incident_key = o.incident_key AND w.first_id < o.id)
      AND pg_try_advisory_xact_lock(hashtextextended(o.incident_key, 0))
    ORDER BY o.id
    LIMIT $1
    FOR UPDATE OF o SKIP LOCKED
)
SELECT c.id AS seq, c.incident_key, c.tenant_id, c.failures, c.created_at AS queued_at,
       c.event_id, e.event_type, e.workflow, e.step, e.vendor, e.error_code, e.http_status,
       e.correlation_id, e.occurred_at, e.signature, e.traceparent
FROM claimed c
LEFT JOIN LATERAL (SELECT * FROM events WHERE events.id = c.event_id LIMIT 1) e ON true
ORDER BY c.id
"""
DELIVERED = "DELETE FROM event_outbox WHERE id = ANY($1::bigint[])"
# The whole outbox may be waiting on an outage: retry soon after it ends.
RETRY_SOON = f"""
UPDATE event_outbox SET attempts = attempts + 1, last_error = $2,
       available_at = now() + least(power(2, attempts), {MAX_TRANSIENT_BACKOFF_S})
                              * interval '1 second'
WHERE id = ANY($1::bigint[])
"""
# This group's own failure: back off further each time, until it is dead-lettered.
RETRY_LATER = f"""
UPDATE event_outbox SET attempts = attempts + 1, failures = failures + 1, last_error = $2,
       available_at = now() + least(power(2, failures), {MAX_FAILURE_BACKOFF_S})
                              * interval '1 second'
WHERE id = ANY($1::bigint[])
"""
DEAD_LETTER = """
WITH moved AS (
    DELETE FROM event_outbox WHERE id = ANY($1::bigint[])
    RETURNING id, event_id, tenant_id, incident_key, created_at, failures
)
INSERT INTO dead_letters (id, tenant_id, incident_key, event_ids, failures, error,
                          first_queued_at)
SELECT gen_random_uuid(), $2, $3, array_agg(event_id ORDER BY id), max(failures) + 1, $4,
       min(created_at)
FROM moved HAVING count(*) > 0
"""
# A tenant at its cap: its new incident waits, without counting as a failure of the group.
DEFER_S = 2
DEFERRED = f"""
UPDATE event_outbox SET available_at = now() + interval '{DEFER_S} seconds'
WHERE id = ANY($1::bigint[])
"""
OPEN_INCIDENTS = """
SELECT workflow_id FROM incidents
WHERE tenant_id = $1 AND source_workflow = $2 AND ($3::text IS NULL OR step = $3)
  AND closed_at IS NULL
LIMIT 1000
"""
DEPTH = (
    "SELECT count(*) AS depth, extract(epoch FROM now() - min(created_at)) AS age FROM event_outbox"
)
KEYWORDS = {
    name: SearchAttributeKey.for_keyword(name)
    for name in ("TenantId", "IncidentStatus", "ErrorCode", "Vendor", "SourceWorkflow", "Signature")
}


class PoisonGroup(Exception):
    """A group that cannot be delivered however often it is retried (malformed, orphaned)."""


@dataclass(frozen=True)
class Group:
    """The claimed rows of one outbox key, in sequence order."""

    key: str
    rows: list[asyncpg.Record]

    @property
    def ids(self) -> list[int]:
        """Return the rows' outbox sequence numbers."""
        return [row["seq"] for row in self.rows]

    @property
    def resolves(self) -> bool:
        """Tell whether the group holds success events (resolving open incidents)."""
        return self.key.startswith(RESOLVE_PREFIX)

    @property
    def failures(self) -> int:
        """Return how often this group failed for its own reasons so far."""
        return max(int(row["failures"]) for row in self.rows)

    def check(self) -> None:
        """Refuse a group no retry can deliver."""
        if not self.key.startswith((INCIDENT_PREFIX, RESOLVE_PREFIX)):
            raise PoisonGroup(f"malformed outbox key {self.key[:80]!r}")
        if any(row["event_type"] is None for row in self.rows):
            raise PoisonGroup("an event of this group is no longer stored")


def group_rows(rows: list[asyncpg.Record]) -> list[Group]:
    """Group claimed rows by key, keys ordered by their first row."""
    groups: dict[str, list[asyncpg.Record]] = {}
    for row in rows:  # already in sequence order
        groups.setdefault(row["incident_key"], []).append(row)
    return [Group(key, members) for key, members in groups.items()]


def summarise(row: asyncpg.Record) -> EventSummary:
    """The reference form of one event: what the incident needs, none of the client's data.

    The message and the payload stay in PostgreSQL; activities read them by `event_id` when
    they call out, so Temporal's history never holds them.
    """
    return EventSummary(
        event_id=str(row["event_id"]),
        event_type=row["event_type"],
        occurred_at=row["occurred_at"],
        step=row["step"],
        vendor=row["vendor"],
        error_code=row["error_code"],
        http_status=row["http_status"],
        correlation_id=row["correlation_id"],
        seq=row["seq"],
    )


def _micros(at: datetime) -> int:
    delta = at - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def digest(group: Group) -> EventDigest:
    """Compress a group into the `event_digest` signal."""
    failures = [r for r in group.rows if r["event_type"] in FAILURE_TYPES]
    successes = [r for r in group.rows if r["event_type"] not in FAILURE_TYPES]

    def newest(rows: list[asyncpg.Record]) -> EventSummary | None:
        row = max(rows, key=lambda r: (r["occurred_at"], r["seq"]), default=None)
        return summarise(row) if row is not None else None

    return EventDigest(
        source=group.key,
        seqs=group.ids,
        kinds="".join("f" if r["event_type"] in FAILURE_TYPES else "s" for r in group.rows),
        occurred_us=[_micros(r["occurred_at"]) for r in group.rows],
        latest_failure=newest(failures),
        latest_success=newest(successes),
    )


def incident_input(first: asyncpg.Record) -> IncidentInput:
    """The identity of the incident a failure group starts."""
    return IncidentInput(
        tenant_id=str(first["tenant_id"]),
        source_workflow=first["workflow"],
        signature=first["signature"],
        step=first["step"],
        error_code=first["error_code"],
        vendor=first["vendor"],
        correlation_id=first["correlation_id"],
    )


def start_options(first: asyncpg.Record) -> dict[str, Any]:
    """Search attributes, Web UI summary and memo of a new incident."""
    values = {
        "TenantId": str(first["tenant_id"]),
        "IncidentStatus": IncidentStatus.OPEN,
        "ErrorCode": first["error_code"],
        "Vendor": first["vendor"],
        "SourceWorkflow": first["workflow"],
        "Signature": first["signature"],
    }
    pairs = [SearchAttributePair(KEYWORDS[k], v) for k, v in values.items() if v]
    parts = (first["workflow"], first["error_code"] or "error", first["vendor"])
    summary = " · ".join(part for part in parts if part)
    return {
        "search_attributes": TypedSearchAttributes(pairs),
        "static_summary": summary.encode()[:200].decode(errors="ignore"),
        "memo": {"correlation_id": first["correlation_id"]},
    }


async def open_incidents(conn: asyncpg.Connection, group: Group) -> list[str]:
    """Workflow ids of the open incidents a group of success events may resolve."""
    first = group.rows[0]
    step = first["step"] if first["event_type"] == EventType.STEP_SUCCEEDED else None
    found = await conn.fetch(OPEN_INCIDENTS, first["tenant_id"], first["workflow"], step)
    return [row["workflow_id"] for row in found]


async def dead_letter(conn: asyncpg.Connection, group: Group, error: str) -> None:
    """Move a group to `dead_letters`; it is no longer retried until replayed."""
    first = group.rows[0]
    await conn.execute(DEAD_LETTER, group.ids, first["tenant_id"], group.key, error[:2000])
