"""The delivery activity: one lifecycle event to one responder target, one action row each.

A failure that may pass (network, 408, 429, 5xx) raises so Temporal retries it durably, after
the target's `Retry-After` when it sent one (bounded); the last try, or an answer that will
not change, is a failed action and an outcome, never a failed incident.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.action_metrics import count_action
from activities.dry_run import NOT_SENT
from activities.outbound import HttpResult, heartbeating
from activities.records import NOT_BACKED, running_workflow_id, write_action
from activities.responder_sender import (
    Registration,
    ResponderSender,
    delivered,
    describe,
    worth_retrying,
)
from activities.vendor_formats import TRIGGER, IncidentFacts
from clients import workflow_ui_url
from rules.targets import EscalationPolicy, Target, masked_target
from vocabulary import VENDOR_WORKFLOW_PREFIX, ActionStatus, ActionType
from workflows.activity_payloads import ActionRequest, DeliveryOutcome, DeliveryRequest
from workflows.activity_requests import delivery_key

log = logging.getLogger("awfdrs.responders")
# A target may ask for a pause (429 Retry-After); longer than this, the retry policy's own
# backoff decides, so one slow target cannot hold the incident's next level back for long.
MAX_DELIVERY_RETRY_AFTER_S = 300.0
NO_TARGET = "the policy no longer has this target"
UNDELIVERABLE = "delivery failed"


def pick_target(policy: EscalationPolicy, req: DeliveryRequest) -> Target | None:
    """The target a request names: a level's target or fallback, or a notification target."""
    if req.level == 0:
        targets = policy.notification_targets(req.event)
        return targets[req.index] if 0 <= req.index < len(targets) else None
    if not 1 <= req.level <= len(policy.levels):
        return None
    level = policy.levels[req.level - 1]
    if req.index < 0:
        return level.fallback
    return level.targets[req.index] if req.index < len(level.targets) else None


class ResponderActivities:
    """Delivers pages, lifecycle follow-ups and notifications."""

    def __init__(
        self,
        *,
        sender: ResponderSender,
        engine: AsyncEngine,
        ui_base_url: str | None,
        namespace: str,
        api_base_url: str | None = None,
    ) -> None:
        self._sender = sender
        self._engine = engine
        self._ui_base_url = ui_base_url
        self._namespace = namespace
        self._api_base_url = api_base_url

    @activity.defn(name="deliver_to_responder")
    async def deliver(self, req: DeliveryRequest) -> DeliveryOutcome:
        """Send one event to one target; raise only to be retried."""
        async with heartbeating():
            return await self._deliver(req)

    async def _deliver(self, req: DeliveryRequest) -> DeliveryOutcome:
        registration = await self._registration(req)
        if not registration.backed:
            log.warning("refused a delivery no stored event backs: %s", running_workflow_id())
            return DeliveryOutcome(False, NOT_BACKED)
        target = pick_target(registration.policy, req)
        action = _action(req, target)
        await write_action(self._engine, action)
        if target is None:
            return await self._finish(action, HttpResult(None, "", error=NO_TARGET), ok=False)
        if registration.dry_run:
            return await self._skip(action)
        result = await self._send(req, target, registration)
        if delivered(result):
            return await self._finish(action, result, ok=True)
        tries = activity.info().attempt
        if worth_retrying(result) and tries < req.tries:
            await write_action(self._engine, replace(action, result=_result(result, tries)))
            raise ApplicationError(
                f"{UNDELIVERABLE}: {describe(result)}", next_retry_delay=_pause(result)
            )
        return await self._finish(action, result, ok=False)

    async def _registration(self, req: DeliveryRequest) -> Registration:
        """A vendor incident pages through its tenant's policy, an incident through its own."""
        workflow_id = running_workflow_id()
        if workflow_id.startswith(VENDOR_WORKFLOW_PREFIX):
            return await self._sender.tenant_registration(
                req.tenant_id, req.incident_id, workflow_id
            )
        return await self._sender.registration(req.tenant_id, req.source_workflow, workflow_id)

    async def _send(
        self, req: DeliveryRequest, target: Target, registration: Registration
    ) -> HttpResult:
        return await self._sender.send(
            req.tenant_id,
            target,
            req.event,
            self._facts(req),
            message_id=delivery_key(req),
            webhook_url=registration.webhook_url,
            correlation_id=req.correlation_id,
        )

    def _facts(self, req: DeliveryRequest) -> IncidentFacts:
        return IncidentFacts(
            incident_id=req.incident_id,
            summary=req.summary,
            source_workflow=req.source_workflow,
            severity=req.severity,
            level=req.level,
            level_name=req.level_name,
            attempts=req.attempts,
            event_count=req.event_count,
            error_code=req.error_code,
            vendor=req.vendor,
            status=req.status,
            last_error=req.last_error,
            links=incident_links(
                api_base=self._api_base_url,
                ui_url=workflow_ui_url(self._ui_base_url, self._namespace, running_workflow_id()),
                incident_id=req.incident_id,
            ),
        )

    async def _skip(self, action: ActionRequest) -> DeliveryOutcome:
        """A dry run's page: recorded with the (masked) target it would go to, never sent."""
        would_send = {key: action.parameters[key] for key in ("event", "target_type", "target")}
        result = {"delivered": False, "detail": NOT_SENT, "would_send": would_send}
        skipped = replace(action, status=ActionStatus.SKIPPED_DRY_RUN, result=result)
        await write_action(self._engine, skipped)
        count_action(action.action_type, ActionStatus.SKIPPED_DRY_RUN)
        return DeliveryOutcome(False, NOT_SENT)

    async def _finish(
        self, action: ActionRequest, result: HttpResult, *, ok: bool
    ) -> DeliveryOutcome:
        tries = activity.info().attempt if activity.in_activity() else 1
        final = replace(
            action,
            status=ActionStatus.SUCCEEDED if ok else ActionStatus.FAILED,
            result=_result(result, tries),
        )
        await write_action(self._engine, final)
        count_action(action.action_type, "delivered" if ok else "failed")
        return DeliveryOutcome(ok, describe(result), result.status)


def incident_links(*, api_base: str | None, ui_url: str | None, incident_id: str) -> dict[str, str]:
    """The incident in the API and its timeline in the Web UI, as far as they are known."""
    links = {}
    if api_base:
        links["Incident (AWFDRS API)"] = f"{api_base}/api/v1/incidents/{incident_id}"
    if ui_url:
        links["Incident timeline (Temporal Web UI)"] = ui_url
    return links


def _action(req: DeliveryRequest, target: Target | None) -> ActionRequest:
    parameters: dict[str, Any] = {"event": req.event, "level": req.level, "index": req.index}
    if target is not None:
        parameters |= {"target_type": target.type, "target": masked_target(target)}
    return ActionRequest(
        tenant_id=req.tenant_id,
        incident_id=req.incident_id,
        action_type=ActionType.ESCALATE if req.event == TRIGGER else ActionType.NOTIFY,
        attempt=req.level,
        idempotency_key=delivery_key(req),
        status=ActionStatus.RUNNING,
        parameters=parameters,
    )


def _result(result: HttpResult, tries: int) -> dict[str, Any]:
    return {
        "delivered": delivered(result),
        "detail": describe(result),
        "http_status": result.status,
        "tries": tries,
    }


def _pause(result: HttpResult) -> timedelta | None:
    if result.retry_after_s is None:
        return None
    return timedelta(seconds=min(result.retry_after_s, MAX_DELIVERY_RETRY_AFTER_S))
