"""Two-way responders: verify a PagerDuty or Opsgenie webhook, then acknowledge or resolve.

A verified delivery becomes an `Order`: which incident (the id AWFDRS sent as PagerDuty's
`dedup_key` and Opsgenie's `alias`), which signal, who. Carrying it out claims a receipt row
first (unique per delivery, so a redelivery does nothing twice), then signals the workflow;
the receipt is the audit row the incident's timeline shows.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import ServiceUnavailable
from models.incident import Incident
from models.responder_webhook import ResponderReceipt, ResponderSystem
from models.schemas.incidents import TimelineEntry
from models.schemas.responders import ResponderAnswer
from vocabulary import TERMINAL_STATUSES
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import AcknowledgeRequest, ResolveRequest

log = logging.getLogger("awfdrs.responders")
SIGNAL_TIMEOUT = timedelta(seconds=2)
MAX_SIGNATURES = 10  # PagerDuty sends one per active secret of the subscription: a few
SIGNALLED = "signalled"
Signal = Literal["acknowledge", "resolve"]


def pagerduty_signature_matches(raw: bytes, header: str | None, secrets: list[str]) -> bool:
    """Tell whether any `v1=` signature of the header is the HMAC-SHA256 of `raw` by a secret."""
    if not header or not secrets:
        return False
    offered = [
        part.strip()[3:].lower().encode("latin-1", "replace")
        for part in header.split(",")[:MAX_SIGNATURES]
        if part.strip().startswith("v1=")
    ]
    expected = [
        hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest().encode("ascii")
        for secret in secrets
    ]
    # Every pair is compared in constant time, and none is skipped once one matches.
    matches = [hmac.compare_digest(e, o) for e in expected for o in offered]
    return any(matches)


def token_matches(header: str | None, secrets: list[str]) -> bool:
    """Tell whether the header holds one of the active tokens (constant-time comparison)."""
    if not header:
        return False
    given = header.strip().encode("latin-1", "replace")
    matches = [hmac.compare_digest(given, secret.encode()) for secret in secrets]
    return any(matches)


@dataclass(frozen=True)
class Order:
    """What a verified responder webhook asks of AWFDRS."""

    system: ResponderSystem
    delivery_id: str
    event_type: str
    signal: Signal | None  # None: a kind of delivery AWFDRS does not act on
    incident_ref: str | None  # the incident id AWFDRS sent as dedup key or alias
    who: str  # the responder's name for who acted
    who_id: str | None = None

    @property
    def by(self) -> str:
        """How the signal and the audit row name who acted: `pagerduty:Jane Doe`."""
        return f"{self.system.value}:{self.who}"


def _ignored(reason: str, incident_id: uuid.UUID | None = None) -> ResponderAnswer:
    return ResponderAnswer(status="ignored", reason=reason, incident_id=incident_id)


async def _find_incident(
    session: AsyncSession, tenant_id: uuid.UUID, ref: str | None
) -> Incident | None:
    try:
        incident_id = uuid.UUID(ref or "")
    except ValueError:  # not an incident AWFDRS opened (its key is not an AWFDRS id)
        return None
    row = await session.get(Incident, incident_id)
    return row if row is not None and row.tenant_id == tenant_id else None


async def carry_out(
    order: Order, *, session: AsyncSession, temporal: Client, tenant_id: uuid.UUID
) -> ResponderAnswer:
    """Signal the incident the order names, once per delivery; say what was done."""
    if order.signal is None:
        return _ignored(f"{order.event_type!r} is not acted on (only acknowledge and resolve)")
    row = await _find_incident(session, tenant_id, order.incident_ref)
    if row is None:
        return _ignored(f"no such incident: {order.incident_ref!r} is no incident of this tenant")
    incident_id = row.id  # read now: a refused claim rolls back and expires `row`
    receipt = await _claim(session, order, row)
    if receipt is None:
        return ResponderAnswer(
            status="duplicate", reason="this delivery was already received", incident_id=incident_id
        )
    receipt.outcome = await _signal(temporal, row, order)
    await session.commit()
    log.info(
        "%s %s of incident %s by %s: %s",
        order.system,
        order.signal,
        row.id,
        order.by,
        receipt.outcome,
    )
    if receipt.outcome != SIGNALLED:
        return _ignored(receipt.outcome, incident_id)
    return ResponderAnswer(
        status="signalled", reason=SIGNALLED, incident_id=incident_id, signal=order.signal
    )


async def _claim(session: AsyncSession, order: Order, row: Incident) -> ResponderReceipt | None:
    """Insert the delivery's receipt; None when it exists (a concurrent twin waits for ours)."""
    assert order.signal is not None
    receipt = ResponderReceipt(
        tenant_id=row.tenant_id,
        system=order.system.value,
        delivery_id=order.delivery_id,
        incident_id=row.id,
        event_type=order.event_type,
        signal=order.signal,
        actor=order.by[:300],
        actor_id=order.who_id,
        outcome=SIGNALLED,
    )
    session.add(receipt)
    try:
        await session.flush()
    except IntegrityError:  # the unique delivery: received before
        await session.rollback()
        return None
    return receipt


async def _signal(temporal: Client, row: Incident, order: Order) -> str:
    """Send the signal; the outcome to record. 503 (nothing stored) when Temporal is down."""
    if row.status in TERMINAL_STATUSES:
        return f"incident already {row.status}"
    handle = temporal.get_workflow_handle_for(
        IncidentWorkflow.run, row.workflow_id, first_execution_run_id=row.run_id
    )
    system = order.system.value
    try:
        if order.signal == "resolve":
            reason = f"resolved in {_display(order.system)} by {order.who}"
            resolve = ResolveRequest(reason=reason, by=order.by, origin=system)
            await handle.signal(IncidentWorkflow.resolve, resolve, rpc_timeout=SIGNAL_TIMEOUT)
        else:
            ack = AcknowledgeRequest(by=order.by, origin=system)
            await handle.signal(IncidentWorkflow.acknowledge, ack, rpc_timeout=SIGNAL_TIMEOUT)
    except RPCError as exc:
        if "completed" in str(exc).lower() or "not found" in str(exc).lower():
            return "incident already ended"
        raise _unavailable() from None
    except (RuntimeError, OSError):
        raise _unavailable() from None
    return SIGNALLED


def _display(system: ResponderSystem) -> str:
    return "PagerDuty" if system == ResponderSystem.PAGERDUTY else "Opsgenie"


def _unavailable() -> ServiceUnavailable:
    # Not 2xx: the responder redelivers, and the receipt was rolled back, so it acts then.
    return ServiceUnavailable(
        "temporal is unavailable; the webhook was not acted on", dependency="temporal"
    )


async def responder_entries(session: AsyncSession, row: Incident) -> list[TimelineEntry]:
    """The incident's acknowledgements and resolutions that came from responder systems."""
    receipts = await session.exec(
        select(ResponderReceipt).where(
            ResponderReceipt.tenant_id == row.tenant_id, ResponderReceipt.incident_id == row.id
        )
    )
    return [
        TimelineEntry(
            at=r.received_at,
            kind="responder",
            summary=f"{r.signal} from {_display(ResponderSystem(r.system))}: {r.outcome}",
            cause=r.actor,
            details={
                "system": r.system,
                "event_type": r.event_type,
                "delivery_id": r.delivery_id,
                "actor_id": r.actor_id,
            },
        )
        for r in receipts
    ]
