"""The retry itself: POST to the client's callback and classify the outcome."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.action_metrics import count_action, observe_first_callback
from activities.dry_run import placeholder_signature, skipped_call, would_send
from activities.outbound import (
    HttpResult,
    canonical_json,
    post_signed,
)
from activities.records import NOT_BACKED, running_workflow_id, write_action
from activities.safety import release_slot, slot_member
from activities.signing import WebhookSigner
from models.base import sql_strings
from rules.egress import EgressGuard, EgressRefused, VettedTarget
from vocabulary import (
    FAILURE_TYPES,
    ActionStatus,
    ActionType,
    CallOutcome,
    EventType,
    WorkflowMode,
)
from workflows.activity_payloads import ActionRequest, CallbackOutcome, CallbackRequest

log = logging.getLogger("awfdrs.remediation")
RETRYABLE_4XX = (408, 429)
NOT_REGISTERED = "workflow no longer registered"
EXCERPT_CHARS = 100
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
_FAILURES = sql_strings(kind for kind in EventType if kind in FAILURE_TYPES)
# Everything a callback sends comes from PostgreSQL, found by references: the registered
# workflow's current URL, and the incident's newest failure (the one the workflow names if it
# is stored, else the newest of the incident key). No stored failure of this tenant under the
# workflow's own id means the start was forged: nothing is called.
_TARGET = text(f"""
SELECT w.callback_url, w.mode, e.id AS event_id, e.error_message, e.payload::text AS payload,
       e.correlation_id, e.received_at,
       (SELECT reason FROM kill_switches
        WHERE tenant_id = w.tenant_id AND workflow = w.name AND active
          AND (vendor IS NULL OR vendor = :vendor) AND (expires_at IS NULL OR expires_at > now())
        ORDER BY created_at LIMIT 1) AS kill_reason
FROM workflows w
LEFT JOIN LATERAL (
    SELECT id, error_message, payload, correlation_id, received_at FROM events
    WHERE tenant_id = w.tenant_id AND incident_key = :key
      AND event_type IN ({_FAILURES})
    ORDER BY (id = CAST(:event_id AS uuid)) DESC NULLS LAST, occurred_at DESC
    LIMIT 1
) e ON true
WHERE w.tenant_id = :tenant_id AND w.name = :workflow
""")


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


@dataclass(frozen=True)
class CallbackTarget:
    """Where and what to call, resolved from references at call time."""

    url: str | None
    event_id: str | None = None
    message: str | None = None
    payload: Any = None
    correlation_id: str = ""
    received_at: datetime | None = None  # when AWFDRS accepted the failure being retried
    dry_run: bool = False  # the workflow's mode now: record what would be sent, send nothing
    kill_reason: str | None = None  # a kill switch thrown since the gate permitted the call


async def load_target(engine: AsyncEngine, req: CallbackRequest) -> CallbackTarget:
    """Resolve the callback's URL and the failure it retries from the registry and events."""
    params = {
        "tenant_id": uuid.UUID(req.tenant_id),
        "workflow": req.source_workflow,
        "key": running_workflow_id(),
        "event_id": req.event_id or None,
        "vendor": req.vendor,
    }
    async with engine.connect() as conn:
        row = (await conn.execute(_TARGET, params)).first()
    if row is None:
        return CallbackTarget(None)
    return CallbackTarget(
        str(row.callback_url),
        str(row.event_id) if row.event_id else None,
        row.error_message,
        _json_or_none(row.payload),
        row.correlation_id or "",
        row.received_at,
        row.mode == WorkflowMode.DRY_RUN,
        row.kill_reason,
    )


def _json_or_none(raw: str | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:  # stored by PostgreSQL, refused by Python (a 5,000-digit number)
        return None


def callback_body(req: CallbackRequest, target: CallbackTarget) -> bytes:
    """The signed JSON body of one callback: the incident, the attempt and the failure."""
    return canonical_json(
        {
            "incident_id": req.incident_id,
            "incident_key": running_workflow_id(),
            "attempt": req.attempt,
            "workflow": req.source_workflow,
            "step": req.step,
            "vendor": req.vendor,
            "error": {"code": req.error_code, "message": target.message},
            "payload": target.payload,
        }
    )


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
    ) -> None:
        self._http = http
        self._engine = engine
        self._signer = signer
        self._redis = redis
        self._guard = guard

    @activity.defn(name="call_callback")
    async def call_callback(self, req: CallbackRequest) -> CallbackOutcome:
        """Retry the failed step once at the workflow's current callback URL; record it."""
        try:
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
        log.info(
            "callback attempt %d → %s",
            req.attempt,
            outcome.outcome,
            extra={"incident_id": req.incident_id, "http_status": outcome.http_status},
        )
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
        result = {**(asdict(outcome) if outcome else {}), "callback_url": url, **(extra or {})}
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
