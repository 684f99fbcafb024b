"""Escalation as it ran before typed targets: a signed page to each level's first webhook.

Kept for incidents whose histories began before the `responder-targets` patch; new incidents
page through `activities.responders`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.action_metrics import count_action
from activities.outbound import (
    HttpResult,
    canonical_json,
    heartbeating,
    post_signed,
)
from activities.records import NOT_BACKED, running_workflow_id, write_action
from activities.signing import WebhookSigner
from clients import workflow_ui_url
from models.secret_box import SecretBox, mask_url
from models.stored_secrets import WEBHOOK_URLS
from rules.egress import EgressGuard, EgressRefused, VettedTarget
from rules.targets import WORKFLOW_WEBHOOK, EscalationPolicy, WebhookTarget
from vocabulary import ActionStatus, ActionType
from workflows.activity_payloads import ActionRequest, EscalationOutcome, EscalationRequest

log = logging.getLogger("awfdrs.escalation")
WEBHOOK_TIMEOUT_S = 10.0
NO_WEBHOOK = "no escalation webhook configured"
# The page goes where the policy and the registry say now, for an incident the tenant's stored
# events name; the URL in the request (planned earlier, or forged) is not the authority.
_TARGET = text("""
SELECT w.escalation_webhook_url,
       EXISTS (SELECT 1 FROM events WHERE tenant_id = w.tenant_id AND incident_key = :key)
         AS backed
FROM workflows w WHERE w.tenant_id = :tenant_id AND w.name = :workflow
""")


def escalation_key(req: EscalationRequest) -> str:
    """The page's idempotency key and action key: one per incident and level."""
    # Keyed by incident, not workflow ID: a signature that recurs after its incident closed
    # runs under the same workflow ID, and its new incident must page and be audited again.
    return f"{req.incident_id}:escalate:{req.level}"


def pagerduty_body(req: EscalationRequest, ui_url: str | None) -> dict[str, object]:
    """Build an Events API v2 `trigger` whose dedup_key is the incident id."""
    body: dict[str, object] = {
        "event_action": "trigger",
        # PagerDuty folds triggers with one dedup_key into one alert: a new incident is a new one.
        "dedup_key": req.incident_id,
        "payload": {
            "summary": req.summary[:1024],
            "source": req.source_workflow,
            "severity": req.step.severity,
            "component": req.vendor or req.source_workflow,
            "group": req.source_workflow,
            "class": req.error_code or "unknown",
            "custom_details": {
                "incident_id": req.incident_id,
                "level": req.level,
                "level_name": req.step.name,
                "attempts": req.attempts,
                "event_count": req.event_count,
            },
        },
    }
    if ui_url is not None:
        body["links"] = [{"href": ui_url, "text": "Incident timeline (Temporal Web UI)"}]
    return body


class EscalationActivities:
    """Pages escalation levels; one action row per level."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        guard: EgressGuard,
        ui_base_url: str | None,
        namespace: str,
        policy: EscalationPolicy,
        signer: WebhookSigner,
        box: SecretBox,
    ) -> None:
        self._http = http
        self._engine = engine
        self._policy = policy
        self._signer = signer
        self._box = box
        self._guard = guard
        self._ui_base_url = ui_base_url
        self._namespace = namespace

    @activity.defn(name="send_escalation")
    async def send_escalation(self, req: EscalationRequest) -> EscalationOutcome:
        """POST the page; a target that is missing, down or refuses is a failed action."""
        async with heartbeating():
            return await self._send(req)

    async def _send(self, req: EscalationRequest) -> EscalationOutcome:
        backed, url = await self._target(req)
        if not backed:
            log.warning("refused a page no stored event backs: %s", running_workflow_id())
            return EscalationOutcome(False, NOT_BACKED)
        key = escalation_key(req)
        action = ActionRequest(
            tenant_id=req.tenant_id,
            incident_id=req.incident_id,
            action_type=ActionType.ESCALATE,
            attempt=req.level,
            idempotency_key=key,
            status=ActionStatus.RUNNING,
            parameters={"level": req.step.name, "webhook_url": url and mask_url(url)},
        )
        await write_action(self._engine, action)
        if not url:
            return await self._finish(action, delivered=False, detail=NO_WEBHOOK)
        try:
            target = await self._guard.vet(url, tenant_id=req.tenant_id)
        except EgressRefused as refused:
            return await self._finish(action, delivered=False, detail=f"egress refused: {refused}")
        result = await self._page(req, key, target)
        delivered = result.status is not None and 200 <= result.status < 300
        detail = f"HTTP {result.status}" if result.status else (result.error or "no response")
        return await self._finish(action, delivered=delivered, detail=detail)

    async def _target(self, req: EscalationRequest) -> tuple[bool, str | None]:
        """Whether stored events back the incident, and the level's webhook as of now."""
        params = {
            "tenant_id": uuid.UUID(req.tenant_id),
            "workflow": req.source_workflow,
            "key": running_workflow_id(),
        }
        async with self._engine.connect() as conn:
            row = (await conn.execute(_TARGET, params)).first()
        levels = self._policy.levels
        if row is None or not 1 <= req.level <= len(levels):
            return row is not None and bool(row.backed), None
        first = levels[req.level - 1].targets[0]
        webhook = first.url if isinstance(first, WebhookTarget) else None
        if webhook != WORKFLOW_WEBHOOK:
            return bool(row.backed), webhook
        sealed, context = row.escalation_webhook_url, WEBHOOK_URLS.context(req.tenant_id)
        return bool(row.backed), sealed and self._box.decrypt(sealed, context=context)

    async def _page(self, req: EscalationRequest, key: str, target: VettedTarget) -> HttpResult:
        ui_url = workflow_ui_url(self._ui_base_url, self._namespace, running_workflow_id())
        body = canonical_json(pagerduty_body(req, ui_url))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "X-Correlation-ID": req.correlation_id,
            # Standard Webhooks (`webhook-id` is the page's idempotency key) and legacy.
            **await self._signer.headers(req.tenant_id, message_id=key, body=body),
        }
        # Every failure to build or send the request comes back as the result's error.
        return await post_signed(
            self._http, target, body, headers=headers, timeout_s=WEBHOOK_TIMEOUT_S
        )

    async def _finish(
        self, action: ActionRequest, *, delivered: bool, detail: str
    ) -> EscalationOutcome:
        final = replace(
            action,
            status=ActionStatus.SUCCEEDED if delivered else ActionStatus.FAILED,
            result={"delivered": delivered, "detail": detail},
        )
        await write_action(self._engine, final)
        count_action(ActionType.ESCALATE, "delivered" if delivered else "failed")
        return EscalationOutcome(delivered, detail)
