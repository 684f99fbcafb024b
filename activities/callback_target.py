"""Where a callback goes and what it carries, resolved from references when it is made.

Everything a callback sends comes from PostgreSQL: the registered workflow's current URL and
mode, the incident's newest failure, and any kill switch thrown since the gate permitted it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.outbound import canonical_json
from activities.records import running_workflow_id
from models.base import sql_strings
from vocabulary import FAILURE_TYPES, EventType, WorkflowMode
from workflows.activity_payloads import CallbackRequest

_FAILURES = sql_strings(kind for kind in EventType if kind in FAILURE_TYPES)
# Everything a callback sends comes from PostgreSQL, found by references: the registered
# workflow's current URL, and the incident's newest failure (the one the workflow names if it
# is stored, else the newest of the incident key). No stored failure of this tenant under the
# workflow's own id means the start was forged: nothing is called.
_TARGET = text(f"""
SELECT w.callback_url, w.mode, e.id AS event_id, e.error_message, e.payload::text AS payload,
       e.correlation_id, e.received_at,
       (SELECT reason FROM kill_switches
        WHERE tenant_id = w.tenant_id AND workflow = w.name AND active
          AND (vendor IS NULL OR vendor = :vendor) AND (expires_at IS NULL OR expires_at > now())
        ORDER BY created_at LIMIT 1) AS kill_reason
FROM workflows w
LEFT JOIN LATERAL (
    SELECT id, error_message, payload, correlation_id, received_at FROM events
    WHERE tenant_id = w.tenant_id AND incident_key = :key
      AND event_type IN ({_FAILURES})
    ORDER BY (id = CAST(:event_id AS uuid)) DESC NULLS LAST, occurred_at DESC
    LIMIT 1
) e ON true
WHERE w.tenant_id = :tenant_id AND w.name = :workflow
""")


@dataclass(frozen=True)
class CallbackTarget:
    """Where and what to call, resolved from references at call time."""

    url: str | None
    event_id: str | None = None
    message: str | None = None
    payload: Any = None
    correlation_id: str = ""
    received_at: datetime | None = None  # when AWFDRS accepted the failure being retried
    dry_run: bool = False  # the workflow's mode now: record what would be sent, send nothing
    kill_reason: str | None = None  # a kill switch thrown since the gate permitted the call


async def load_target(engine: AsyncEngine, req: CallbackRequest) -> CallbackTarget:
    """Resolve the callback's URL and the failure it retries from the registry and events."""
    params = {
        "tenant_id": uuid.UUID(req.tenant_id),
        "workflow": req.source_workflow,
        "key": running_workflow_id(),
        "event_id": req.event_id or None,
        "vendor": req.vendor,
    }
    async with engine.connect() as conn:
        row = (await conn.execute(_TARGET, params)).first()
    if row is None:
        return CallbackTarget(None)
    return CallbackTarget(
        str(row.callback_url),
        str(row.event_id) if row.event_id else None,
        row.error_message,
        _json_or_none(row.payload),
        row.correlation_id or "",
        row.received_at,
        row.mode == WorkflowMode.DRY_RUN,
        row.kill_reason,
    )


def _json_or_none(raw: str | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:  # stored by PostgreSQL, refused by Python (a 5,000-digit number)
        return None


def callback_body(req: CallbackRequest, target: CallbackTarget) -> bytes:
    """The signed JSON body of one callback: the incident, the attempt and the failure."""
    return canonical_json(
        {
            "incident_id": req.incident_id,
            "incident_key": running_workflow_id(),
            "attempt": req.attempt,
            "workflow": req.source_workflow,
            "step": req.step,
            "vendor": req.vendor,
            "error": {"code": req.error_code, "message": target.message},
            "payload": target.payload,
        }
    )
