"""Controls: the signals operators, and PagerDuty's `acknowledge`, send to an incident."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.errors import Conflict, ServiceUnavailable
from api.principals import Principal, actor_for
from api.services import operator_audit
from api.services.adapters import ALERT_CODE
from models.incident import Incident
from models.schemas.incidents import Control, ControlBody
from rules.policy import ErrorCatalog
from rules.signature import compute_signature, incident_key
from vocabulary import TERMINAL_STATUSES, VENDOR_WORKFLOW_PREFIX, SignalName, UpdateName
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import (
    AcknowledgeRequest,
    ApprovalRequest,
    KillRequest,
    OperatorRequest,
    ResolveRequest,
)

log = logging.getLogger("awfdrs.controls")
SIGNAL_TIMEOUT = timedelta(seconds=2)
# An update returns once the workflow has run its handler: a workflow task, not just a write.
UPDATE_TIMEOUT = timedelta(seconds=10)
PAGERDUTY_ACTOR = "pagerduty"
IncidentHandle = WorkflowHandle[IncidentWorkflow, Any]


async def send_control(
    *,
    session: AsyncSession,
    temporal: Client,
    row: Incident,
    control: Control,
    body: ControlBody | None,
    actor: Principal,
) -> None:
    """Signal (or update) the incident's workflow and audit it; 409 when closed or refused."""
    body = body or ControlBody()
    await _deliver(temporal=temporal, row=row, control=control, body=body, actor=actor)
    await operator_audit.record(
        session=session,
        principal=actor,
        action=str(control),
        target=f"incident:{row.id}",
        note=body.by,
        detail={"reason": body.reason} if body.reason else None,
    )


async def _deliver(
    *, temporal: Client, row: Incident, control: Control, body: ControlBody, actor: Principal
) -> None:
    if row.status in TERMINAL_STATUSES:
        raise Conflict(f"incident {row.id} is {row.status}; controls apply only to live incidents")
    # A vendor incident's row is written before its run starts, so it names no run of its own.
    vendor = row.workflow_id.startswith(VENDOR_WORKFLOW_PREFIX)
    if vendor and control not in (SignalName.KILL, SignalName.RESOLVE):
        raise Conflict(f"vendor incident {row.id} takes only kill and resolve")
    handle = temporal.get_workflow_handle_for(
        IncidentWorkflow.run, row.workflow_id, first_execution_run_id=None if vendor else row.run_id
    )
    try:
        if control in (UpdateName.APPROVE, UpdateName.REJECT):
            await _decide(handle, control, body, actor)
        else:
            await _signal(handle, control, body, actor)
    except WorkflowUpdateFailedError as exc:  # the validator's reason: no approval pending
        raise Conflict(f"incident {row.id}: {getattr(exc.cause, 'message', exc)}") from None
    except RPCError as exc:
        if "completed" in str(exc).lower() or "not found" in str(exc).lower():
            raise Conflict(f"incident {row.id} has already ended") from None
        raise _unavailable() from None
    except (RuntimeError, OSError):
        raise _unavailable() from None


async def _signal(
    handle: IncidentHandle, control: Control, body: ControlBody, actor: Principal
) -> None:
    """Send one control with its argument: who acted comes from the credential, never the body."""
    by = actor_for(actor)
    # A close reason is the operator's words or names the actor; a free-text `by` goes to
    # the audit row as a note.
    reason = body.reason or f"{control} by {by}"
    if control == SignalName.KILL:
        kill = KillRequest(reason=reason, by=by)
        await handle.signal(IncidentWorkflow.kill, kill, rpc_timeout=SIGNAL_TIMEOUT)
    elif control == SignalName.RESOLVE:
        resolve = ResolveRequest(reason=reason, by=by)
        await handle.signal(IncidentWorkflow.resolve, resolve, rpc_timeout=SIGNAL_TIMEOUT)
    elif control == SignalName.ACKNOWLEDGE:
        ack = AcknowledgeRequest(by=by)
        await handle.signal(IncidentWorkflow.acknowledge, ack, rpc_timeout=SIGNAL_TIMEOUT)
    elif control == SignalName.PAUSE:
        pause = OperatorRequest(by=by, reason=body.reason)
        await handle.signal(IncidentWorkflow.pause, pause, rpc_timeout=SIGNAL_TIMEOUT)
    else:
        resume = OperatorRequest(by=by, reason=body.reason)
        await handle.signal(IncidentWorkflow.resume, resume, rpc_timeout=SIGNAL_TIMEOUT)


async def _decide(
    handle: IncidentHandle, control: Control, body: ControlBody, actor: Principal
) -> str:
    """Approve or reject the pending attempt (a validated update); return the decision."""
    request = ApprovalRequest(by=actor_for(actor), reason=body.reason)
    decision: str = await handle.execute_update(
        str(control), request, result_type=str, rpc_timeout=UPDATE_TIMEOUT
    )
    return decision


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "temporal is unavailable; the control was not delivered", dependency="temporal"
    )


async def acknowledge_alert(
    *, temporal: Client, catalog: ErrorCatalog, tenant_id: uuid.UUID, workflow: str, dedup_key: str
) -> None:
    """PagerDuty `acknowledge`: acknowledge the alert's incident; no open incident, no effect."""
    signature = compute_signature(
        catalog,
        workflow=workflow,
        step=dedup_key,
        error_code=ALERT_CODE,
        error_message=None,
        vendor=None,
    )
    handle = temporal.get_workflow_handle_for(
        IncidentWorkflow.run, incident_key(str(tenant_id), signature)
    )
    try:
        ack = AcknowledgeRequest(by=PAGERDUTY_ACTOR)
        await handle.signal(IncidentWorkflow.acknowledge, ack)
    except (RPCError, RuntimeError, OSError) as exc:  # no open alert: PagerDuty drops it too
        log.info("pagerduty acknowledge for %s dropped: %s", dedup_key, exc)
