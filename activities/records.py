"""Database projections of incidents and their actions; every write is idempotent."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity

from models.base import sql_strings
from vocabulary import FINAL_ACTION_STATUSES, ActionStatus, EventType
from workflows.activity_payloads import (
    REDELIVERY,
    ActionRequest,
    AttemptStart,
    OpenIncidentRequest,
    OpenIncidentResult,
    RecordIncidentRequest,
)

log = logging.getLogger("awfdrs.records")
NOT_BACKED = "refused: no stored event of this tenant names this incident"
_FINAL = sql_strings(status for status in ActionStatus if status in FINAL_ACTION_STATUSES)

_UPSERT_INCIDENT = text("""
WITH previous AS (
    SELECT status FROM incidents WHERE workflow_id = :workflow_id AND run_id = :run_id
), upserted AS (
    INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, severity, category, title,
                           source_workflow, step, signature, error_code, vendor, event_count,
                           attempts, first_seen_at, last_seen_at, closed_at, updated_at,
                           watermarks)
    SELECT gen_random_uuid(), :tenant_id, :workflow_id, :run_id, :status, :severity, :category,
           :title, :source_workflow, :step, :signature, :error_code, :vendor, :event_count,
           :attempts, coalesce(:first_seen_at, now()), coalesce(:last_seen_at, now()),
           CASE WHEN :closed THEN now() END, now(), CAST(:watermarks AS jsonb)
    -- A new row only for an incident its tenant's stored events name (not a forged start).
    WHERE EXISTS (SELECT 1 FROM previous)
       OR EXISTS (SELECT 1 FROM events WHERE tenant_id = CAST(:tenant_id AS uuid)
                                         AND incident_key = :workflow_id)
    ON CONFLICT (workflow_id, run_id) DO UPDATE SET
        status = excluded.status, severity = excluded.severity, category = excluded.category,
        error_code = excluded.error_code, event_count = excluded.event_count,
        attempts = excluded.attempts,
        first_seen_at = least(incidents.first_seen_at, excluded.first_seen_at),
        last_seen_at = greatest(incidents.last_seen_at, excluded.last_seen_at),
        closed_at = coalesce(incidents.closed_at, excluded.closed_at), updated_at = now(),
        watermarks = excluded.watermarks
    RETURNING id, tenant_id, status
), transition AS (
    INSERT INTO incident_transitions (tenant_id, incident_id, status, reason)
    SELECT upserted.tenant_id, upserted.id, upserted.status, :reason FROM upserted
    WHERE CAST(:new_cause AS boolean)
       OR NOT EXISTS (SELECT 1 FROM previous WHERE previous.status = upserted.status)
)
SELECT id FROM upserted
""")
# Earlier incidents of the same workflow id: the highest sequence each counted, per key.
_EARLIER_WATERMARKS = text("""
SELECT mark.key, max(mark.value::bigint) AS seq
FROM (SELECT watermarks FROM incidents WHERE workflow_id = :workflow_id AND run_id <> :run_id
      ORDER BY created_at DESC LIMIT 100) AS earlier,
     jsonb_each_text(earlier.watermarks) AS mark
GROUP BY mark.key
""")
# A run of IncidentWorkflow acts only for an incident its tenant's stored events name: a start
# forged by hand (another tenant's id, a made-up signature) has none.
_BACKED = text("""
SELECT EXISTS (SELECT 1 FROM events WHERE tenant_id = :tenant_id AND incident_key = :key)
""")
# The newest success that closes failures of this (workflow, step): one index probe each.
_LATEST_SUCCESS = text(f"""
(SELECT id, occurred_at FROM events
 WHERE tenant_id = :tenant_id AND workflow = :workflow AND event_type = '{EventType.STEP_SUCCEEDED}'
   AND step = :step ORDER BY occurred_at DESC LIMIT 1)
UNION ALL
(SELECT id, occurred_at FROM events
 WHERE tenant_id = :tenant_id AND workflow = :workflow AND event_type = '{EventType.STEP_SUCCEEDED}'
   AND step IS NULL ORDER BY occurred_at DESC LIMIT 1)
UNION ALL
(SELECT id, occurred_at FROM events
 WHERE tenant_id = :tenant_id AND workflow = :workflow
   AND event_type = '{EventType.WORKFLOW_SUCCEEDED}'
 ORDER BY occurred_at DESC LIMIT 1)
ORDER BY occurred_at DESC LIMIT 1
""")
# One statement inserts an action or moves it forward (never backwards, never from a final
# status); a pending request only inserts. Only for an incident of this tenant: a forged request
# stores nothing and fails nothing.
_WRITE_ACTION = text(f"""
INSERT INTO actions (id, tenant_id, incident_id, action_type, attempt, idempotency_key, status,
                     parameters, result, created_at, started_at, finished_at, updated_at)
SELECT gen_random_uuid(), incidents.tenant_id, incidents.id, :action_type, :attempt,
       :idempotency_key, CAST(:status AS text), CAST(:parameters AS jsonb),
       CAST(:result AS jsonb), now(),
       CASE WHEN CAST(:status AS text) = '{ActionStatus.RUNNING}' THEN now() END,
       CASE WHEN CAST(:status AS text) IN ({_FINAL}) THEN now() END,
       CASE WHEN CAST(:status AS text) <> '{ActionStatus.PENDING}' THEN now() END
FROM incidents
WHERE incidents.id = CAST(:incident_id AS uuid) AND incidents.tenant_id = CAST(:tenant_id AS uuid)
ON CONFLICT (tenant_id, idempotency_key) DO UPDATE SET
    status = excluded.status, result = excluded.result, finished_at = excluded.finished_at,
    started_at = coalesce(actions.started_at, excluded.started_at), updated_at = now()
WHERE excluded.status <> '{ActionStatus.PENDING}' AND actions.status NOT IN ({_FINAL})
  AND actions.incident_id = excluded.incident_id
""")


def running_workflow_id() -> str:
    """The id of the workflow this activity runs for, as the Temporal server says."""
    return activity.info().workflow_id or ""


class IncidentRecords:
    """Writes the incident, decision and action rows the API and operators read."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn(name="record_incident")
    async def record_incident(self, req: RecordIncidentRequest) -> str:
        """Create or refresh the incident row of this workflow run; return its id."""
        async with self._engine.begin() as conn:
            incident_id = (
                await conn.execute(_UPSERT_INCIDENT, _incident_params(req))
            ).scalar_one_or_none()
        return str(incident_id)

    @activity.defn(name="open_incident")
    async def open_incident(self, req: OpenIncidentRequest) -> OpenIncidentResult:
        """Open a new run's incident unless earlier runs counted every event in hand."""
        async with self._engine.connect() as conn:
            return await self.open_on(conn, req)

    async def open_on(self, conn: AsyncConnection, req: OpenIncidentRequest) -> OpenIncidentResult:
        """`open_incident` on `conn` (autocommit: each statement is stored when it returns)."""
        record = req.record
        backed = await conn.execute(
            _BACKED, {"tenant_id": uuid.UUID(record.tenant_id), "key": running_workflow_id()}
        )
        if not backed.scalar_one():
            log.warning("refused to open an incident no stored event names: %s", record)
            return OpenIncidentResult("", refused=NOT_BACKED)
        rows = await conn.execute(
            _EARLIER_WATERMARKS, {"workflow_id": record.workflow_id, "run_id": record.run_id}
        )
        earlier = {row.key: int(row.seq) for row in rows}
        fresh = req.legacy_events or any(
            seq > earlier.get(key, 0) for key, seq in req.pending.items()
        )
        if not fresh:
            return OpenIncidentResult("", earlier, refused=REDELIVERY)
        incident_id = (await conn.execute(_UPSERT_INCIDENT, _incident_params(record))).scalar_one()
        await conn.commit()  # a no-op on the worker's autocommit engine
        # Read after the commit: a success stored later finds this incident open when it is
        # dispatched, and one stored earlier is seen here, so none falls between the two.
        params = {
            "tenant_id": uuid.UUID(record.tenant_id),
            "workflow": record.source_workflow,
            "step": record.step,
        }
        row = (await conn.execute(_LATEST_SUCCESS, params)).first()
        success_id, success_at = (str(row.id), row.occurred_at) if row else (None, None)
        return OpenIncidentResult(str(incident_id), earlier, success_at, success_id)

    @activity.defn(name="record_action")
    async def record_action(self, req: ActionRequest) -> None:
        """Insert an action as pending, or move it to a later status (never backwards)."""
        await write_action(self._engine, req)

    @activity.defn(name="start_attempt")
    async def start_attempt(self, req: AttemptStart) -> None:
        """Store an attempt's pending action row, then the incident row, on one connection.

        Each statement commits on its own (the worker's engine autocommits); both are
        idempotent and the step is retried until stored, so a crash between them only
        leaves the projection behind until the retry."""
        async with self._engine.begin() as conn:
            await conn.execute(_WRITE_ACTION, _action_params(req.action))
            await conn.execute(_UPSERT_INCIDENT, _incident_params(req.projection))


def _incident_params(req: RecordIncidentRequest) -> dict[str, Any]:
    title = " · ".join(p for p in (req.source_workflow, req.error_code, req.vendor) if p)
    params = asdict(req)
    params.update(title=title[:500], watermarks=json.dumps(req.watermarks))
    return params


def _action_params(req: ActionRequest) -> dict[str, Any]:
    return {
        "tenant_id": req.tenant_id,
        "incident_id": req.incident_id,
        "action_type": req.action_type,
        "attempt": req.attempt,
        "idempotency_key": req.idempotency_key,
        "status": req.status,
        "parameters": json.dumps(req.parameters),
        "result": json.dumps(req.result),
    }


async def write_action(engine: AsyncEngine, req: ActionRequest) -> None:
    """Idempotently insert or advance one action row."""
    params = _action_params(req)
    for retry in (True, False):
        try:
            async with engine.begin() as conn:
                await conn.execute(_WRITE_ACTION, params)
            return
        except DBAPIError as exc:
            # The callback activity runs once: a pooled connection the database dropped
            # while it was restarting must not cost the incident an attempt.
            if not (retry and exc.connection_invalidated):
                raise
