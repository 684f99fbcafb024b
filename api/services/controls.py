"""Controls: the signals operators, and PagerDuty's `acknowledge`, send to an incident."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from api.errors import Conflict, ServiceUnavailable
from api.principals import Principal
from api.services.adapters import ALERT_CODE
from models.incident import Incident
from models.schemas.incidents import Control, ControlBody
from rules.policy import ErrorCatalog
from rules.signature import compute_signature, incident_key
from vocabulary import TERMINAL_STATUSES, SignalName
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import (
    AcknowledgeRequest,
    KillRequest,
    OperatorRequest,
    ResolveRequest,
)

log = logging.getLogger("awfdrs.controls")
SIGNAL_TIMEOUT = timedelta(seconds=2)
PAGERDUTY_ACTOR = "pagerduty"
IncidentHandle = WorkflowHandle[IncidentWorkflow, Any]


async def send_control(
    *, temporal: Client, row: Incident, control: Control, body: ControlBody | None, actor: Principal
) -> None:
    """Signal the incident's workflow; 409 when the incident is closed, 503 without Temporal."""
    if row.status in TERMINAL_STATUSES:
        raise Conflict(f"incident {row.id} is {row.status}; controls apply only to live incidents")
    handle = temporal.get_workflow_handle_for(
        IncidentWorkflow.run, row.workflow_id, first_execution_run_id=row.run_id
    )
    try:
        await _signal(handle, control, body or ControlBody(), actor)
    except RPCError as exc:
        if "completed" in str(exc).lower() or "not found" in str(exc).lower():
            raise Conflict(f"incident {row.id} has already ended") from None
        raise _unavailable() from None
    except (RuntimeError, OSError):
        raise _unavailable() from None


async def _signal(
    handle: IncidentHandle, control: Control, body: ControlBody, actor: Principal
) -> None:
    """Send one control with its argument; an operator's own words win over the defaults."""
    via_api = f"{control} via API by key {actor.key_id}"
    by = body.by or actor.actor
    if control == SignalName.KILL:
        kill = KillRequest(reason=body.reason or via_api)
        await handle.signal(IncidentWorkflow.kill, kill, rpc_timeout=SIGNAL_TIMEOUT)
    elif control == SignalName.RESOLVE:
        resolve = ResolveRequest(reason=body.reason or via_api)
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
