"""The retry itself: POST to the client's callback and classify the outcome."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.action_metrics import count_action, observe_first_callback
from activities.callback_target import CallbackTarget, callback_body, load_target
from activities.dry_run import placeholder_signature, skipped_call, would_send
from activities.outbound import HttpResult, heartbeating, post_signed
from activities.records import NOT_BACKED, running_workflow_id, write_action
from activities.safety import release_slot, slot_member
from activities.signing import WebhookSigner
from rules.egress import EgressGuard, EgressRefused, VettedTarget
from vocabulary import ActionStatus, ActionType, CallOutcome
from workflows.activity_payloads import (
    ActionRequest,
    CallbackOutcome,
    CallbackRequest,
    OutcomeRecord,
)

log = logging.getLogger("awfdrs.remediation")
RETRYABLE_4XX = (408, 429)
NOT_REGISTERED = "workflow no longer registered"
EXCERPT_CHARS = 100
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def excerpt(body: str) -> str:
    """At most 100 printable ASCII characters of a response body, whitespace collapsed."""
    # Served by GET /actions and carried into pages: enough to recognise a callback's own
    # error message, too little (and too inert) to read back what a called service holds.
    flat = _NOT_PRINTABLE_ASCII.sub("?", " ".join(body.split()))
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 3] + "..."


def classify_response(result: HttpResult) -> CallbackOutcome:
    """2xx success; 408, 429, 5xx and transport errors retryable; other statuses fatal."""
    status = result.status
    if status is None:
        return CallbackOutcome(CallOutcome.RETRYABLE, None, result.error or "no response")
    shown = excerpt(result.body)
    detail = f"HTTP {status}: {shown}" if shown else f"HTTP {status}"
    if 200 <= status < 300:
        return CallbackOutcome(CallOutcome.SUCCESS, status, detail)
    if status in RETRYABLE_4XX or status >= 500:
        return CallbackOutcome(CallOutcome.RETRYABLE, status, detail, result.retry_after_s)
    if 300 <= status < 400:
        return CallbackOutcome(CallOutcome.FATAL, status, "redirect not followed")
    return CallbackOutcome(CallOutcome.FATAL, status, detail)


class RemediationActivities:
    """Calls tenants' callbacks with idempotency keys and HMAC signatures."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        guard: EgressGuard,
        signer: WebhookSigner,
        redis: Redis | None = None,
        count_outcome: Callable[[OutcomeRecord], Awaitable[str]] | None = None,
    ) -> None:
        self._http = http
        self._count_outcome = count_outcome
        self._engine = engine
        self._signer = signer
        self._redis = redis
        self._guard = guard

    @activity.defn(name="call_callback")
    async def call_callback(self, req: CallbackRequest) -> CallbackOutcome:
        """Retry the failed step once at the workflow's current callback URL; record it."""
        try:
            async with heartbeating():
                return await self._call(req)
        finally:
            await self._release_slot(req)

    async def _release_slot(self, req: CallbackRequest) -> None:
        if self._redis is None:
            return
        try:
            await release_slot(
                self._redis, req.tenant_id, slot_member(req.incident_id, req.attempt)
            )
        except (RedisError, OSError) as exc:  # the lease lapses on its own
            log.warning("callback slot not released: %s", exc)

    async def _call(self, req: CallbackRequest) -> CallbackOutcome:
        # The registry, not `req.callback_url` (fixed when the incident was planned), is the
        # authority: a callback_url changed by the tenant is used from the next attempt on.
        target = await load_target(self._engine, req)
        if target.url is not None and target.event_id is None:
            log.warning("refused a callback no stored event backs: %s", running_workflow_id())
            return CallbackOutcome(CallOutcome.FATAL, None, NOT_BACKED)
        url = target.url
        if target.kill_reason is not None:
            # Thrown between the gate's permit and now: the switch wins, nothing is called.
            stopped = CallbackOutcome(
                CallOutcome.CANCELLED, None, f"kill switch: {target.kill_reason}"
            )
            await self._action(req, ActionStatus.CANCELLED, stopped, url=url)
            return stopped
        await self._action(req, ActionStatus.RUNNING, url=url)
        vetted = await self._vet(req, url)
        if isinstance(vetted, CallbackOutcome):
            await self._action(req, ActionStatus.FAILED, vetted, url=url)
            return vetted
        if target.dry_run:
            return await self._skip(req, target)
        result = await self._post(req, target, vetted)
        outcome = classify_response(result)
        count_action(ActionType.RETRY, outcome.outcome)
        if req.attempt == 1:
            observe_first_callback(target.received_at)
        succeeded = outcome.outcome == CallOutcome.SUCCESS
        status = ActionStatus.SUCCEEDED if succeeded else ActionStatus.FAILED
        await self._action(req, status, outcome, url=url)
        outcome = await self._counted(req, outcome)
        log.info(
            "callback attempt %d → %s",
            req.attempt,
            outcome.outcome,
            extra={"incident_id": req.incident_id, "http_status": outcome.http_status},
        )
        return outcome

    async def _counted(self, req: CallbackRequest, outcome: CallbackOutcome) -> CallbackOutcome:
        """The outcome with the breaker's state after counting it, when the workflow asks."""
        if not (req.count_breaker and req.vendor and self._count_outcome):
            return outcome
        record = OutcomeRecord(
            req.tenant_id, req.vendor, outcome.outcome, req.probe, req.idempotency_key
        )
        try:
            return replace(outcome, breaker=await self._count_outcome(record))
        except (RedisError, OSError) as exc:  # the workflow counts it in a step of its own
            log.warning("breaker outcome not counted with the call: %s", exc)
            return outcome

    async def _vet(self, req: CallbackRequest, url: str | None) -> VettedTarget | CallbackOutcome:
        """The address to call, vetted now, or the failed outcome saying why nothing is called."""
        if url is None:
            return CallbackOutcome(CallOutcome.FATAL, None, NOT_REGISTERED)
        try:
            return await self._guard.vet(url, tenant_id=req.tenant_id)
        except EgressRefused as refused:
            # A DNS failure may clear up; a refused host, scheme, port or address will not.
            outcome = CallOutcome.RETRYABLE if refused.transient else CallOutcome.FATAL
            return CallbackOutcome(outcome, None, f"egress refused: {refused.reason}")

    async def _skip(self, req: CallbackRequest, target: CallbackTarget) -> CallbackOutcome:
        """Record what a dry run's attempt would have sent; call nothing."""
        assert target.url is not None
        body = callback_body(req, target)
        headers = self._headers(req, target, placeholder_signature(req.idempotency_key))
        outcome = skipped_call()
        count_action(ActionType.RETRY, ActionStatus.SKIPPED_DRY_RUN)
        await self._action(
            req,
            ActionStatus.SKIPPED_DRY_RUN,
            outcome,
            url=target.url,
            extra={"would_send": would_send(target.url, headers, body)},
        )
        log.info("callback attempt %d skipped: dry run", req.attempt)
        return outcome

    def _headers(
        self, req: CallbackRequest, target: CallbackTarget, signature: dict[str, str]
    ) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Idempotency-Key": req.idempotency_key,
            "X-Correlation-ID": target.correlation_id or req.correlation_id,
            # Standard Webhooks (`webhook-id` is the attempt's idempotency key) and legacy.
            **signature,
            "User-Agent": "awfdrs/0.1",
        }

    async def _post(
        self, req: CallbackRequest, target: CallbackTarget, vetted: VettedTarget
    ) -> HttpResult:
        url = target.url
        assert url is not None
        body = callback_body(req, target)
        signature = await self._signer.headers(
            req.tenant_id, message_id=req.idempotency_key, body=body
        )
        headers = self._headers(req, target, signature)
        try:
            return await post_signed(
                self._http, vetted, body, headers=headers, timeout_s=req.timeout_s
            )
        except asyncio.CancelledError:
            # Killed mid-call: the cancellation reached us through a heartbeat.
            count_action(ActionType.RETRY, CallOutcome.CANCELLED)
            cancelled = CallbackOutcome(CallOutcome.CANCELLED, None, "killed")
            await asyncio.shield(self._action(req, ActionStatus.CANCELLED, cancelled, url=url))
            raise

    async def _action(
        self,
        req: CallbackRequest,
        status: ActionStatus,
        outcome: CallbackOutcome | None = None,
        *,
        url: str | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        # The pending row was written with the URL known when the incident was planned; the
        # result names the URL this attempt really used.
        result = {**(outcome.stored() if outcome else {}), "callback_url": url, **(extra or {})}
        await write_action(
            self._engine,
            ActionRequest(
                tenant_id=req.tenant_id,
                incident_id=req.incident_id,
                action_type=ActionType.RETRY,
                attempt=req.attempt,
                idempotency_key=req.idempotency_key,
                status=status,
                parameters={"callback_url": url or req.callback_url},
                result=result,
            ),
        )
