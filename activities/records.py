"""Database projections of incidents and their actions; every write is idempotent."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from workflows.incident_types import ActionRequest, RecordIncidentRequest

FINAL_ACTION_STATUSES = ("succeeded", "failed", "cancelled")

_UPSERT_INCIDENT = text("""
WITH previous AS (
    SELECT status FROM incidents WHERE workflow_id = :workflow_id AND run_id = :run_id
), upserted AS (
    INSERT INTO incidents (id, tenant_id, workflow_id, run_id, status, severity, category, title,
                           source_workflow, step, signature, error_code, vendor, event_count,
                           attempts, first_seen_at, last_seen_at, closed_at, updated_at)
    VALUES (gen_random_uuid(), :tenant_id, :workflow_id, :run_id, :status, :severity, :category,
            :title, :source_workflow, :step, :signature, :error_code, :vendor, :event_count,
            :attempts, coalesce(:first_seen_at, now()), coalesce(:last_seen_at, now()),
            CASE WHEN :closed THEN now() END, now())
    ON CONFLICT (workflow_id, run_id) DO UPDATE SET
        status = excluded.status, severity = excluded.severity, category = excluded.category,
        error_code = excluded.error_code, event_count = excluded.event_count,
        attempts = excluded.attempts,
        first_seen_at = least(incidents.first_seen_at, excluded.first_seen_at),
        last_seen_at = greatest(incidents.last_seen_at, excluded.last_seen_at),
        closed_at = coalesce(incidents.closed_at, excluded.closed_at), updated_at = now()
    RETURNING id, tenant_id, status
), transition AS (
    INSERT INTO incident_transitions (tenant_id, incident_id, status, reason)
    SELECT upserted.tenant_id, upserted.id, upserted.status, :reason FROM upserted
    WHERE NOT EXISTS (SELECT 1 FROM previous WHERE previous.status = upserted.status)
)
SELECT id FROM upserted
""")
_INSERT_ACTION = text("""
INSERT INTO actions (id, tenant_id, incident_id, action_type, attempt, idempotency_key, status,
                     parameters, result, created_at)
VALUES (gen_random_uuid(), :tenant_id, :incident_id, :action_type, :attempt, :idempotency_key,
        :status, CAST(:parameters AS jsonb), CAST(:result AS jsonb), now())
ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
""")
_FINISH_ACTION = text("""
UPDATE actions SET status = CAST(:status AS text), result = CAST(:result AS jsonb),
       finished_at = CASE WHEN CAST(:status AS text) IN ('succeeded', 'failed', 'cancelled')
                          THEN now() END,
       started_at = coalesce(started_at,
                             CASE WHEN CAST(:status AS text) = 'running' THEN now() END),
       updated_at = now()
WHERE tenant_id = :tenant_id AND idempotency_key = :idempotency_key
  AND status NOT IN ('succeeded', 'failed', 'cancelled')
""")


class IncidentRecords:
    """Writes the incident, decision and action rows the API and operators read."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn(name="record_incident")
    async def record_incident(self, req: RecordIncidentRequest) -> str:
        """Create or refresh the incident row of this workflow run; return its id."""
        title = " · ".join(p for p in (req.source_workflow, req.error_code, req.vendor) if p)
        params = {**req.__dict__, "title": title[:500]}
        async with self._engine.begin() as conn:
            incident_id = (await conn.execute(_UPSERT_INCIDENT, params)).scalar_one()
        return str(incident_id)

    @activity.defn(name="record_action")
    async def record_action(self, req: ActionRequest) -> None:
        """Insert an action as pending, or move it to a later status (never backwards)."""
        await write_action(self._engine, req)


async def write_action(engine: AsyncEngine, req: ActionRequest) -> None:
    """Idempotently insert or advance one action row."""
    params = {
        "tenant_id": req.tenant_id,
        "incident_id": req.incident_id,
        "action_type": req.action_type,
        "attempt": req.attempt,
        "idempotency_key": req.idempotency_key,
        "status": req.status,
        "parameters": json.dumps(req.parameters),
        "result": json.dumps(req.result),
    }
    for retry in (True, False):
        try:
            async with engine.begin() as conn:
                await conn.execute(_INSERT_ACTION, params)
                if req.status != "pending":
                    await conn.execute(_FINISH_ACTION, params)
            return
        except DBAPIError as exc:
            # The callback activity runs once: a pooled connection the database dropped
            # while it was restarting must not cost the incident an attempt.
            if not (retry and exc.connection_invalidated):
                raise
