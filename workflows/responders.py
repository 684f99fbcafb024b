"""The incident's responders: page a level's targets (with fallback), mirror its lifecycle to
what was paged, and send notification rules' messages.

Deterministic workflow code: it runs inside the workflow sandbox. Only target types and
indexes travel here; the delivery activity reads each target and its credential when it sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

from vocabulary import ActionStatus, ActionType
from workflows import activity_calls
from workflows.activity_payloads import (
    ActionRequest,
    DeliveryOutcome,
    DeliveryRequest,
    EscalationOutcome,
)
from workflows.activity_requests import TRIGGER, delivery_key, delivery_request
from workflows.incident_state import EscalationStep, IncidentInput, IncidentState, TargetRef

ACKNOWLEDGE, RESOLVE = "acknowledge", "resolve"
# Lifecycle follow-ups go to paged targets of these types; a plain webhook gets pages only.
MIRRORED_TYPES = ("pagerduty", "opsgenie", "slack")
# Tries of a page (when the level has no fallback to turn to), a follow-up or a notification
# before it counts as failed: enough to ride out a short outage of the target or PostgreSQL.
PAGE_TRIES = 6
FOLLOW_UP_TRIES = 5
FALLBACK_INDEX = -1


class Responders:
    """Sends an incident's pages, follow-ups and notifications, one activity per delivery."""

    def __init__(self, inp: IncidentInput, state: IncidentState) -> None:
        self._inp = inp
        self._state = state

    async def page(self, level: int, step: EscalationStep) -> EscalationOutcome:
        """Page every target of `level`; a primary that keeps failing brings in the fallback."""
        details, failed = [], False
        tries = step.fallback_after if step.fallback else PAGE_TRIES
        # At once: a target that keeps failing must not hold back the others' pages.
        outcomes = await asyncio.gather(
            *(
                self._send(TRIGGER, (level, index), tries, step)
                for index in range(len(step.targets))
            )
        )
        for index, (kind, outcome) in enumerate(zip(step.targets, outcomes, strict=True)):
            details.append(f"{kind}: {'delivered' if outcome.delivered else outcome.detail}")
            if outcome.delivered:
                self._state.paged.append(TargetRef(level, index, kind))
            failed = failed or not outcome.delivered
        if failed and step.fallback:
            outcome = await self._send(TRIGGER, (level, FALLBACK_INDEX), FOLLOW_UP_TRIES, step)
            shown = "delivered" if outcome.delivered else outcome.detail
            details.append(f"fallback {step.fallback}: {shown}")
            if outcome.delivered:
                self._state.paged.append(TargetRef(level, FALLBACK_INDEX, step.fallback))
        delivered = any(ref.level == level for ref in self._state.paged)
        return EscalationOutcome(delivered, "; ".join(details)[:500])

    async def announce(self, event: str, origin: str = "") -> None:
        """Tell paged targets (acknowledge or resolve) and notification rules about `event`."""
        state = self._state
        if not state.responders or event in state.announced:
            return
        state.announced.append(event)
        follow_up = {"acknowledged": ACKNOWLEDGE, "resolved": RESOLVE, "killed": RESOLVE}
        sends = self._mirror(follow_up[event], origin) if event in follow_up else []
        sends += [
            self._send(event, (0, index), FOLLOW_UP_TRIES, None)
            for index, kind in enumerate(state.notifications.get(event, []))
            if kind != origin
        ]
        await asyncio.gather(*sends)

    def _mirror(self, action: str, origin: str) -> list[Coroutine[Any, Any, DeliveryOutcome]]:
        """The follow-up to each paged target, except to the system the order came from."""
        state = self._state
        return [
            self._send(
                action, (ref.level, ref.index), FOLLOW_UP_TRIES, state.escalation[ref.level - 1]
            )
            for ref in state.paged
            if ref.kind in MIRRORED_TYPES and ref.kind != origin
        ]

    async def _send(
        self, event: str, target: tuple[int, int], tries: int, step: EscalationStep | None
    ) -> DeliveryOutcome:
        """One delivery; an activity that ends without an outcome is a failed action row."""
        inp, state = self._inp, self._state
        workflow_id = workflow.info().workflow_id
        request = delivery_request(
            inp, state, workflow_id=workflow_id, event=event, target=target, tries=tries, step=step
        )
        try:
            return await activity_calls.deliver(request)
        except ActivityError as err:
            outcome = DeliveryOutcome(False, f"not delivered: {err.cause}"[:500])
        await activity_calls.record_action(_failed_action(request, outcome))
        return outcome


def _failed_action(request: DeliveryRequest, outcome: DeliveryOutcome) -> ActionRequest:
    """The action row of a delivery whose activity gave no outcome (its retries ran out)."""
    return ActionRequest(
        tenant_id=request.tenant_id,
        incident_id=request.incident_id,
        action_type=ActionType.ESCALATE if request.event == TRIGGER else ActionType.NOTIFY,
        attempt=request.level,
        idempotency_key=delivery_key(request),
        status=ActionStatus.FAILED,
        parameters={"event": request.event, "level": request.level, "index": request.index},
        result={"delivered": False, "detail": outcome.detail},
    )
