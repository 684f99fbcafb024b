"""What a dry-run workflow's callback would have sent, recorded instead of sending it."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from vocabulary import ActionStatus, ActionType, CallOutcome
from workflows.activity_payloads import CallbackOutcome

# Signatures are made with the tenant's secrets when a request leaves; a dry run shows where
# they go, never a value computed from a secret.
SIGNED_AT_SEND_TIME = "<signed at send time>"
SIGNED_HEADERS = ("webhook-timestamp", "webhook-signature", "X-AWFDRS-Signature")
NOT_CALLED = "dry run: not called"
NOT_SENT = "dry run: not sent"
log = logging.getLogger("awfdrs.dry_run")
# The newest callback attempt of the running incident (one index probe each).
_LAST_ATTEMPT = text(f"""
SELECT a.status = '{ActionStatus.SKIPPED_DRY_RUN}' FROM incidents i
JOIN actions a ON a.tenant_id = i.tenant_id AND a.incident_id = i.id
WHERE i.workflow_id = :workflow_id AND i.run_id = :run_id AND i.tenant_id = :tenant_id
  AND a.action_type = '{ActionType.RETRY}'
ORDER BY a.attempt DESC LIMIT 1
""")


def placeholder_signature(message_id: str) -> dict[str, str]:
    """The signature headers of a request, each value but the id left for send time."""
    return {"webhook-id": message_id} | dict.fromkeys(SIGNED_HEADERS, SIGNED_AT_SEND_TIME)


def would_send(url: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The request as it would have left: URL, headers and the JSON body."""
    return {"url": url, "headers": headers, "body": json.loads(body)}


def skipped_call() -> CallbackOutcome:
    """A dry run's outcome: retryable, so the workflow backs off and escalates as if it failed."""
    return CallbackOutcome(CallOutcome.RETRYABLE, None, NOT_CALLED)


async def last_attempt_skipped(engine: AsyncEngine, tenant_id: str) -> bool:
    """Tell whether the running incident's newest callback attempt was a dry run's."""
    if not activity.in_activity():
        return False
    info = activity.info()
    params = {
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "tenant_id": uuid.UUID(tenant_id),
    }
    try:
        async with engine.connect() as conn:
            return bool((await conn.execute(_LAST_ATTEMPT, params)).scalar())
    except (SQLAlchemyError, OSError) as exc:
        # Unknown: count the outcome, as for every live failure, rather than lose it.
        log.warning("dry run of the last attempt unknown: %s", exc)
        return False
