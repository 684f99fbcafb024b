"""Escalation: a PagerDuty Events v2-shaped page to each level's webhook."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.outbound import TenantSecrets, canonical_json, host_allowed, post_signed, sign
from activities.records import write_action
from activities.remediation import count_action
from workflows.incident_types import ActionRequest, EscalationOutcome, EscalationRequest

WEBHOOK_TIMEOUT_S = 10.0


def pagerduty_body(req: EscalationRequest, ui_url: str) -> dict[str, object]:
    """Build an Events API v2 `trigger` whose dedup_key is the incident's workflow ID."""
    return {
        "event_action": "trigger",
        "dedup_key": req.workflow_id,
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
        "links": [{"href": ui_url, "text": "Incident timeline (Temporal Web UI)"}],
    }


class EscalationActivities:
    """Pages escalation levels; one action row per level."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        allowed_hosts: list[str],
        ui_base_url: str,
        namespace: str,
    ) -> None:
        self._http = http
        self._engine = engine
        self._secrets = TenantSecrets(engine)
        self._allowed_hosts = allowed_hosts
        self._ui_base_url = ui_base_url
        self._namespace = namespace

    @activity.defn(name="send_escalation")
    async def send_escalation(self, req: EscalationRequest) -> EscalationOutcome:
        """POST the page; a missing or refused webhook is recorded, never retried forever."""
        key = f"{req.workflow_id}:escalate:{req.level}"
        action = ActionRequest(
            tenant_id=req.tenant_id,
            incident_id=req.incident_id,
            action_type="escalate",
            attempt=req.level,
            idempotency_key=key,
            status="running",
            parameters={"level": req.step.name, "webhook_url": req.step.webhook_url},
        )
        await write_action(self._engine, action)
        url = req.step.webhook_url
        if not url or not host_allowed(url, self._allowed_hosts):
            detail = "no escalation webhook configured" if not url else "webhook host not allowed"
            await write_action(self._engine, _final(action, False, detail))
            return EscalationOutcome(False, detail)
        ui_url = f"{self._ui_base_url}/namespaces/{self._namespace}/workflows/{req.workflow_id}"
        body = canonical_json(pagerduty_body(req, ui_url))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "X-Correlation-ID": req.correlation_id,
            "X-AWFDRS-Signature": sign(body, await self._secrets.get(req.tenant_id)),
        }
        result = await post_signed(
            self._http, url, body, headers=headers, timeout_s=WEBHOOK_TIMEOUT_S
        )
        delivered = result.status is not None and 200 <= result.status < 300
        detail = f"HTTP {result.status}" if result.status else (result.error or "no response")
        await write_action(self._engine, _final(action, delivered, detail))
        count_action("escalate", "delivered" if delivered else "failed")
        return EscalationOutcome(delivered, detail)


def _final(action: ActionRequest, delivered: bool, detail: str) -> ActionRequest:
    return ActionRequest(
        tenant_id=action.tenant_id,
        incident_id=action.incident_id,
        action_type=action.action_type,
        attempt=action.attempt,
        idempotency_key=action.idempotency_key,
        status="succeeded" if delivered else "failed",
        parameters=action.parameters,
        result={"delivered": delivered, "detail": detail},
    )
