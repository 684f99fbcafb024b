"""The retry itself: POST to the client's callback and classify the outcome (DESIGN §10)."""

from __future__ import annotations

import asyncio
import logging

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.outbound import (
    HttpResult,
    TenantSecrets,
    canonical_json,
    host_allowed,
    post_signed,
    sign,
)
from activities.records import write_action
from workflows.incident_types import ActionRequest, CallbackOutcome, CallbackRequest

log = logging.getLogger("awfdrs.remediation")
RETRYABLE_4XX = (408, 429)


def classify_response(result: HttpResult) -> CallbackOutcome:
    """2xx success; 408, 429, 5xx and transport errors retryable; other statuses fatal."""
    status = result.status
    if status is None:
        return CallbackOutcome("retryable", None, result.error or "no response")
    detail = result.body[:500]
    if 200 <= status < 300:
        return CallbackOutcome("success", status, detail)
    if status in RETRYABLE_4XX or status >= 500:
        return CallbackOutcome("retryable", status, detail, result.retry_after_s)
    if 300 <= status < 400:
        return CallbackOutcome("fatal", status, "redirect not followed")
    return CallbackOutcome("fatal", status, detail)


def count_action(action_type: str, outcome: str) -> None:
    """Count one finished action by type and outcome on the worker's metrics."""
    if not activity.in_activity():
        return
    activity.metric_meter().create_counter(
        "awfdrs_actions", "Remediation and escalation actions by type and outcome"
    ).add(1, {"type": action_type, "outcome": outcome})


class RemediationActivities:
    """Calls tenants' callbacks with idempotency keys and HMAC signatures."""

    def __init__(
        self, *, http: httpx.AsyncClient, engine: AsyncEngine, allowed_hosts: list[str]
    ) -> None:
        self._http = http
        self._engine = engine
        self._secrets = TenantSecrets(engine)
        self._allowed_hosts = allowed_hosts

    @activity.defn(name="call_callback")
    async def call_callback(self, req: CallbackRequest) -> CallbackOutcome:
        """Retry the failed step once; record the action running, then its outcome."""
        await self._action(req, "running")
        if not host_allowed(req.callback_url, self._allowed_hosts):
            outcome = CallbackOutcome("fatal", None, "callback host is not allow-listed")
            await self._action(req, "failed", outcome)
            return outcome
        body = canonical_json(
            {
                "incident_id": req.incident_id,
                "incident_key": req.workflow_id,
                "attempt": req.attempt,
                "workflow": req.source_workflow,
                "step": req.step,
                "vendor": req.vendor,
                "error": {"code": req.error_code, "message": req.error_message},
                "payload": req.payload,
            }
        )
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": req.idempotency_key,
            "X-Correlation-ID": req.correlation_id,
            "X-AWFDRS-Signature": sign(body, await self._secrets.get(req.tenant_id)),
            "User-Agent": "awfdrs/0.1",
        }
        try:
            result = await post_signed(
                self._http, req.callback_url, body, headers=headers, timeout_s=req.timeout_s
            )
        except asyncio.CancelledError:
            # Killed mid-call: the cancellation reached us through a heartbeat.
            count_action("retry", "cancelled")
            await asyncio.shield(
                self._action(req, "cancelled", CallbackOutcome("cancelled", None, "killed"))
            )
            raise
        outcome = classify_response(result)
        count_action("retry", outcome.outcome)
        await self._action(req, "succeeded" if outcome.outcome == "success" else "failed", outcome)
        log.info(
            "callback attempt %d → %s",
            req.attempt,
            outcome.outcome,
            extra={"incident_id": req.incident_id, "http_status": outcome.http_status},
        )
        return outcome

    async def _action(
        self, req: CallbackRequest, status: str, outcome: CallbackOutcome | None = None
    ) -> None:
        result = outcome.__dict__ if outcome else {}
        await write_action(
            self._engine,
            ActionRequest(
                tenant_id=req.tenant_id,
                incident_id=req.incident_id,
                action_type="retry",
                attempt=req.attempt,
                idempotency_key=req.idempotency_key,
                status=status,
                parameters={"callback_url": req.callback_url},
                result=result,
            ),
        )
