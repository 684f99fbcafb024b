"""The retry itself: POST to the client's callback and classify the outcome."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import asdict

import httpx
from sqlalchemy import text
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
# How stale a callback URL may be: a PATCH of `callback_url` is used by every attempt that
# starts more than this long after it commits (the API cannot reach the workers' caches).
CALLBACK_URL_TTL_S = 1.0
NOT_REGISTERED = "workflow no longer registered"
_CALLBACK_URL = text(
    "SELECT callback_url FROM workflows WHERE tenant_id = :tenant_id AND name = :name"
)


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


class CallbackUrls:
    """The registered callback URL of each workflow, read when a callback starts."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._cache: dict[tuple[str, str], tuple[float, str | None]] = {}

    async def get(self, tenant_id: str, workflow: str) -> str | None:
        """Return the current callback URL, or None when the workflow is not registered."""
        key = (tenant_id, workflow)
        cached = self._cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self._engine.connect() as conn:
            params = {"tenant_id": uuid.UUID(tenant_id), "name": workflow}
            url = (await conn.execute(_CALLBACK_URL, params)).scalar_one_or_none()
        self._cache[key] = (time.monotonic() + CALLBACK_URL_TTL_S, url)
        return None if url is None else str(url)


class RemediationActivities:
    """Calls tenants' callbacks with idempotency keys and HMAC signatures."""

    def __init__(
        self, *, http: httpx.AsyncClient, engine: AsyncEngine, allowed_hosts: list[str]
    ) -> None:
        self._http = http
        self._engine = engine
        self._secrets = TenantSecrets(engine)
        self._urls = CallbackUrls(engine)
        self._allowed_hosts = allowed_hosts

    @activity.defn(name="call_callback")
    async def call_callback(self, req: CallbackRequest) -> CallbackOutcome:
        """Retry the failed step once at the workflow's current callback URL; record it."""
        # The registry, not `req.callback_url` (fixed when the incident was planned), is the
        # authority: a callback_url changed by the tenant is used from the next attempt on.
        url = await self._urls.get(req.tenant_id, req.source_workflow)
        await self._action(req, "running", url=url)
        if url is None or not host_allowed(url, self._allowed_hosts):
            detail = NOT_REGISTERED if url is None else "callback host is not allow-listed"
            outcome = CallbackOutcome("fatal", None, detail)
            await self._action(req, "failed", outcome, url=url)
            return outcome
        result = await self._post(req, url)
        outcome = classify_response(result)
        count_action("retry", outcome.outcome)
        status = "succeeded" if outcome.outcome == "success" else "failed"
        await self._action(req, status, outcome, url=url)
        log.info(
            "callback attempt %d → %s",
            req.attempt,
            outcome.outcome,
            extra={"incident_id": req.incident_id, "http_status": outcome.http_status},
        )
        return outcome

    async def _post(self, req: CallbackRequest, url: str) -> HttpResult:
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
            return await post_signed(
                self._http, url, body, headers=headers, timeout_s=req.timeout_s
            )
        except asyncio.CancelledError:
            # Killed mid-call: the cancellation reached us through a heartbeat.
            count_action("retry", "cancelled")
            cancelled = CallbackOutcome("cancelled", None, "killed")
            await asyncio.shield(self._action(req, "cancelled", cancelled, url=url))
            raise

    async def _action(
        self,
        req: CallbackRequest,
        status: str,
        outcome: CallbackOutcome | None = None,
        *,
        url: str | None,
    ) -> None:
        # The pending row was written with the URL known when the incident was planned; the
        # result names the URL this attempt really used.
        result = {**(asdict(outcome) if outcome else {}), "callback_url": url}
        await write_action(
            self._engine,
            ActionRequest(
                tenant_id=req.tenant_id,
                incident_id=req.incident_id,
                action_type="retry",
                attempt=req.attempt,
                idempotency_key=req.idempotency_key,
                status=status,
                parameters={"callback_url": url or req.callback_url},
                result=result,
            ),
        )
