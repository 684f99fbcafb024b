"""Event intake: idempotent bulk insert of events and their outbox rows in one statement."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from asyncpg.pgproto.pgproto import UUID as FastUUID
from pydantic_core import to_json

from api.outbox import RESOLVE_PREFIX
from models.schemas.events import EventIn
from rules.maintenance import Window, covering
from rules.policy import ErrorCatalog
from rules.signature import compute_signature, incident_key
from tracing import current_traceparent
from vocabulary import FAILURE_TYPES, SUCCESS_TYPES, MaintenanceMode, Remediation

_INSERT = """
WITH input AS (
    SELECT * FROM unnest(
        $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::text[], $10::text[], $11::int[], $12::text[], $13::text[], $14::text[],
        $15::text[], $16::text[], $17::timestamptz[], $18::bool[]
    ) AS t(id, idempotency_key, body_sha256, workflow, event_type, step, vendor, error_code,
           error_message, http_status, payload, signature, incident_key, remediation,
           correlation_id, occurred_at, dispatch)
), claimed AS (
    INSERT INTO event_keys (tenant_id, idempotency_key, event_id, received_at)
    SELECT $1, idempotency_key, id, now() FROM input
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING event_id, received_at
), inserted AS (
    INSERT INTO events (id, tenant_id, idempotency_key, body_sha256, workflow, event_type, step,
                        vendor, error_code, error_message, http_status, payload, signature,
                        incident_key, remediation, correlation_id, occurred_at, received_at,
                        traceparent)
    SELECT id, $1, idempotency_key, body_sha256, workflow, event_type, step, vendor, error_code,
           error_message, http_status, payload::jsonb, signature, incident_key, remediation,
           correlation_id, occurred_at, claimed.received_at, $19::text
    FROM input JOIN claimed ON claimed.event_id = input.id
    RETURNING id, incident_key
), outbox AS (
    INSERT INTO event_outbox (event_id, tenant_id, incident_key)
    SELECT inserted.id, $1, inserted.incident_key
    FROM inserted JOIN input USING (id)
    WHERE input.dispatch
)
SELECT id FROM inserted
"""
_COLUMNS = (
    ("id", "uuid"), ("idempotency_key", "text"), ("body_sha256", "text"), ("workflow", "text"),
    ("event_type", "text"), ("step", "text"), ("vendor", "text"), ("error_code", "text"),
    ("error_message", "text"), ("http_status", "int"), ("payload", "text"), ("signature", "text"),
    ("incident_key", "text"), ("remediation", "text"), ("correlation_id", "text"),
    ("occurred_at", "timestamptz"), ("dispatch", "bool"),
)  # fmt: skip
# The same statement for one event, its input a row of scalars: asyncpg encodes 17 one-element
# arrays slowly (a type check per element and array), and a single event is the common request.
_INSERT_ONE = (
    "WITH input AS (\n    SELECT "
    + ", ".join(f"${n}::{kind} AS {name}" for n, (name, kind) in enumerate(_COLUMNS, start=2))
    + "\n)"
    + _INSERT[_INSERT.index(", claimed AS (") :]
)
_EXISTING = """
SELECT k.idempotency_key, e.id, e.body_sha256, e.incident_key, e.remediation
FROM event_keys k JOIN events e ON e.id = k.event_id AND e.received_at = k.received_at
WHERE k.tenant_id = $1 AND k.idempotency_key = ANY($2::text[])
"""
QUIETED_BY_KILL_SWITCH = "kill_switch"
QUIETED_BY_WINDOW = "maintenance_window"


@dataclass(frozen=True)
class WorkflowState:
    """What intake needs to know about a registered workflow."""

    active: bool
    killed_vendors: frozenset[str]
    # The tenant's maintenance windows not ended (matched per event: they may use globs).
    windows: tuple[Window, ...] = ()

    def suppresses(self, vendor: str | None) -> bool:
        """Tell whether a kill switch covers events of `vendor`."""
        return "*" in self.killed_vendors or (vendor is not None and vendor in self.killed_vendors)

    def window_mode(self, event: EventIn, moment: datetime) -> str | None:
        """The mode of the maintenance window covering a failure event now (suppress wins)."""
        error = event.error
        modes = {
            window.mode
            for window, _ in covering(
                list(self.windows),
                moment,
                workflow=event.workflow,
                vendor=event.vendor,
                error_code=error.code if error else None,
                step=event.step,
            )
        }
        if MaintenanceMode.SUPPRESS in modes:
            return MaintenanceMode.SUPPRESS
        return MaintenanceMode.HOLD if modes else None


@dataclass(frozen=True)
class PreparedEvent:
    """A validated event with everything derived from it, ready to insert."""

    id: uuid.UUID
    idempotency_key: str
    body_sha256: str
    event: EventIn
    occurred_at: datetime
    signature: str
    incident_key: str | None
    remediation: Remediation
    dispatch: bool
    quieted_by: str | None = None  # why not `normal`: kill_switch, maintenance_window, tenant_cap


@dataclass(frozen=True)
class StoreOutcome:
    """What happened to one prepared event."""

    event_id: uuid.UUID
    status: int  # 202 stored, 200 replayed duplicate, 409 key reused with another body
    incident_key: str | None
    remediation: Remediation


_CANONICAL = json.JSONEncoder(sort_keys=True)  # what `json.dumps(..., sort_keys=True)` builds
_NOT_DIGESTED = {"idempotency_key"}


def body_digest(event: EventIn) -> str:
    """Return the SHA-256 of the event's canonical JSON, without its idempotency key."""
    # The serializer and the encoder called directly: a batch digests 1,000 events.
    canonical = EventIn.__pydantic_serializer__.to_python(
        event, mode="json", exclude=_NOT_DIGESTED, exclude_none=True
    )
    return hashlib.sha256(_CANONICAL.encode(canonical).encode()).hexdigest()


_KEEP = bytes([0xFF] * 6 + [0x0F, 0xFF, 0x3F] + [0xFF] * 7)
_SET = bytes([0] * 6 + [0x40, 0, 0x80] + [0] * 7)


def new_event_ids(count: int) -> list[uuid.UUID]:
    """Return `count` random (version 4) UUIDs drawn from one read of the OS's randomness."""
    # `uuid4()` reads 16 bytes per call (a syscall each) and builds its UUID in Python;
    # asyncpg's UUID (a `uuid.UUID`, what it returns for uuid columns) is built in C.
    # The version (4) and variant (RFC 4122) bits set for all of them in three big-int steps.
    size = 16 * count
    bits = int.from_bytes(os.urandom(size)) & int.from_bytes(_KEEP * count)
    pool = (bits | int.from_bytes(_SET * count)).to_bytes(size)
    return [FastUUID(pool[at : at + 16]) for at in range(0, size, 16)]


def prepare_event(
    event: EventIn,
    *,
    key: str,
    tenant_id: uuid.UUID,
    catalog: ErrorCatalog,
    workflow: WorkflowState,
    event_id: uuid.UUID | None = None,
) -> PreparedEvent:
    """Derive signature, incident key and remediation mode for one event."""
    error = event.error
    signature = compute_signature(
        catalog,
        workflow=event.workflow,
        step=event.step,
        error_code=error.code if error else None,
        error_message=error.message if error else None,
        vendor=event.vendor,
    )
    remediation, quieted_by = _remediation(event, workflow)
    suppressed = remediation == Remediation.SUPPRESSED
    if event.event_type in FAILURE_TYPES:
        key_for_incident: str | None = incident_key(str(tenant_id), signature)
    elif event.event_type in SUCCESS_TYPES:
        key_for_incident = resolution_key(str(tenant_id), event.workflow, event.step)
    else:
        key_for_incident = None
    return PreparedEvent(
        id=event_id or uuid.uuid4(),
        idempotency_key=key,
        body_sha256=body_digest(event),
        event=event,
        occurred_at=event.occurred_at or datetime.now(UTC),
        signature=signature,
        incident_key=key_for_incident,
        remediation=remediation,
        dispatch=key_for_incident is not None and not suppressed,
        quieted_by=quieted_by,
    )


def _remediation(event: EventIn, workflow: WorkflowState) -> tuple[Remediation, str | None]:
    """Suppressed by a kill switch or a suppressing window, held by a holding window."""
    if workflow.suppresses(event.vendor):
        return Remediation.SUPPRESSED, QUIETED_BY_KILL_SWITCH
    if event.event_type not in FAILURE_TYPES or not workflow.windows:
        return Remediation.NORMAL, None  # success events always pass, to resolve incidents
    mode = workflow.window_mode(event, datetime.now(UTC))
    if mode is None:
        return Remediation.NORMAL, None
    held = Remediation.HELD if mode == MaintenanceMode.HOLD else Remediation.SUPPRESSED
    return held, QUIETED_BY_WINDOW


def resolution_key(tenant_id: str, workflow: str, step: str | None) -> str:
    """Return the outbox group of success events: the (workflow, step) whose incidents close."""
    return f"{RESOLVE_PREFIX}{tenant_id}:{workflow}:{step or ''}"


def _columns(events: list[PreparedEvent], correlation_id: str) -> list[list[Any]]:
    rows = [
        [
            p.id,
            p.idempotency_key,
            p.body_sha256,
            p.event.workflow,
            p.event.event_type,
            p.event.step,
            p.event.vendor,
            p.event.error.code if p.event.error else None,
            p.event.error.message if p.event.error else None,
            p.event.error.http_status if p.event.error else None,
            to_json(p.event.payload).decode(),
            p.signature,
            p.incident_key,
            p.remediation,
            correlation_id,
            p.occurred_at,
            p.dispatch,
        ]
        for p in events
    ]
    return [list(column) for column in zip(*rows, strict=True)]


async def store_events(
    *,
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    events: list[PreparedEvent],
    correlation_id: str,
) -> list[StoreOutcome]:
    """Insert events and outbox rows atomically; replay or refuse reused keys."""
    # One statement claims the keys and inserts events and outbox rows: atomic without an
    # explicit transaction, and idempotent, so the caller may safely repeat it after a dropped
    # connection. A key is claimed in `event_keys` because `events` is partitioned by month
    # and so cannot hold a unique key that spans months.
    columns = _columns(events, correlation_id)
    if len(events) == 1:
        rows = await conn.fetch(
            _INSERT_ONE, tenant_id, *(c[0] for c in columns), current_traceparent()
        )
    else:
        rows = await conn.fetch(_INSERT, tenant_id, *columns, current_traceparent())
    inserted = {row["id"] for row in rows}
    outcomes: dict[uuid.UUID, StoreOutcome] = {
        p.id: StoreOutcome(p.id, 202, p.incident_key, p.remediation)
        for p in events
        if p.id in inserted
    }
    leftovers = [p for p in events if p.id not in inserted]
    if leftovers:
        existing = {
            row["idempotency_key"]: row
            for row in await conn.fetch(
                _EXISTING, tenant_id, [p.idempotency_key for p in leftovers]
            )
        }
        for p in leftovers:
            row = existing[p.idempotency_key]
            status = 200 if row["body_sha256"] == p.body_sha256 else 409
            outcomes[p.id] = StoreOutcome(
                row["id"], status, row["incident_key"], Remediation(row["remediation"])
            )
    return [outcomes[p.id] for p in events]
