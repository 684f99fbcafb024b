"""Sending one message to one responder target: the policy, its credential, egress and HTTP.

Shared by the delivery activity and the `notify test` API route, so a test message goes
through exactly the code a page does.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.outbound import HttpResult, canonical_json, post_signed
from activities.signing import WebhookSigner
from activities.vendor_formats import IncidentFacts, build_request
from models.secret_box import SecretBox
from models.stored_secrets import (
    ESCALATION_POLICIES,
    NAMED_ESCALATION_POLICIES,
    TENANT_ESCALATION_POLICIES,
    WEBHOOK_URLS,
    SealedColumn,
)
from rules.egress import EgressGuard, EgressRefused
from rules.targets import (
    WORKFLOW_WEBHOOK,
    EscalationPolicy,
    Target,
    WebhookTarget,
    effective_policy,
)
from vocabulary import WorkflowMode

SEND_TIMEOUT_S = 10.0
# The policy and the webhook come from the registry as of now, for an incident the tenant's
# stored events name; nothing in the request (planned earlier, or forged) is the authority.
_REGISTRATION = text("""
SELECT w.escalation_webhook_url, w.escalation_policy, w.mode, n.policy_encrypted AS named_policy,
       t.escalation_policy AS tenant_policy,
       EXISTS (SELECT 1 FROM events WHERE tenant_id = w.tenant_id AND incident_key = :key)
         AS backed
FROM workflows w JOIN tenants t ON t.id = w.tenant_id
LEFT JOIN escalation_policies n ON n.tenant_id = w.tenant_id AND n.name = w.escalation_policy_name
WHERE w.tenant_id = :tenant_id AND w.name = :workflow
""")

# A vendor incident pages through its tenant's policy; its own row, which incidents of the
# tenant name as their parent, backs it. Its `webhook: workflow` target (the default policy's)
# is the escalation webhook of the first incident it holds whose workflow has one, so a
# tenant without a policy of its own is still paged, once.
_TENANT_REGISTRATION = text("""
SELECT t.escalation_policy AS tenant_policy,
       (SELECT w.escalation_webhook_url FROM incidents c
        JOIN workflows w ON w.tenant_id = c.tenant_id AND w.name = c.source_workflow
        WHERE c.tenant_id = t.id AND c.parent_incident_id = :incident
          AND w.escalation_webhook_url IS NOT NULL
        ORDER BY c.first_seen_at, c.id LIMIT 1) AS webhook_url,
       EXISTS (SELECT 1 FROM incidents p WHERE p.id = :incident AND p.tenant_id = t.id
                 AND p.workflow_id = :key
                 AND EXISTS (SELECT 1 FROM incidents c
                             WHERE c.tenant_id = t.id AND c.parent_incident_id = p.id))
         AS backed
FROM tenants t WHERE t.id = :tenant_id
""")


@dataclass(frozen=True)
class Registration:
    """A workflow's escalation policy and webhook, unsealed, and whether events back the key."""

    policy: EscalationPolicy
    webhook_url: str | None
    backed: bool
    dry_run: bool = False  # the workflow's mode now: record each page, send none


class ResponderSender:
    """Loads targets and sends to them; never raises for a failed send."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        guard: EgressGuard,
        signer: WebhookSigner,
        box: SecretBox,
        default_policy: EscalationPolicy,
    ) -> None:
        self._http = http
        self._engine = engine
        self._guard = guard
        self._signer = signer
        self._box = box
        self.default_policy = default_policy

    async def registration(self, tenant_id: str, workflow: str, key: str = "") -> Registration:
        """The workflow's own policy (or the default) and webhook; `backed` for `key`."""
        params = {"tenant_id": uuid.UUID(tenant_id), "workflow": workflow, "key": key}
        async with self._engine.connect() as conn:
            row = (await conn.execute(_REGISTRATION, params)).first()
        if row is None:
            return Registration(self.default_policy, None, False)
        return Registration(
            policy_of_row(self._box, tenant_id, row._mapping, self.default_policy),
            row.escalation_webhook_url
            and self._box.decrypt(
                row.escalation_webhook_url, context=WEBHOOK_URLS.context(tenant_id)
            ),
            bool(row.backed),
            row.mode == WorkflowMode.DRY_RUN,
        )

    async def tenant_registration(
        self, tenant_id: str, incident_id: str, key: str = ""
    ) -> Registration:
        """The tenant's policy (or the default), a held workflow's webhook; `backed` when
        `incident_id` is the row of vendor incident `key` and incidents name it as parent."""
        params = {"tenant_id": uuid.UUID(tenant_id), "incident": uuid.UUID(incident_id), "key": key}
        async with self._engine.connect() as conn:
            row = (await conn.execute(_TENANT_REGISTRATION, params)).first()
        if row is None:
            return Registration(self.default_policy, None, False)
        own = open_policy(self._box, tenant_id, row.tenant_policy, TENANT_ESCALATION_POLICIES)
        webhook = row.webhook_url and self._box.decrypt(
            row.webhook_url, context=WEBHOOK_URLS.context(tenant_id)
        )
        return Registration(effective_policy(own, self.default_policy), webhook, bool(row.backed))

    def unseal_policy(self, tenant_id: str, sealed: str | None) -> EscalationPolicy | None:
        """Open a stored policy (None when the workflow has none of its own)."""
        return open_policy(self._box, tenant_id, sealed)

    async def send(
        self,
        tenant_id: str,
        target: Target,
        event: str,
        facts: IncidentFacts,
        *,
        message_id: str,
        webhook_url: str | None,
        correlation_id: str = "",
    ) -> HttpResult:
        """Send `event` to `target`; a refusal or missing address is a result with an error."""
        url = target.url if isinstance(target, WebhookTarget) else ""
        if isinstance(target, WebhookTarget) and url == WORKFLOW_WEBHOOK:
            url = webhook_url or ""
            if not url:
                return HttpResult(None, "", error="no escalation webhook configured")
        request = build_request(target, event, facts, url)
        try:
            vetted = await self._guard.vet(request.url, tenant_id=tenant_id)
        except EgressRefused as refused:
            return HttpResult(None, "", error=f"egress refused: {refused}")
        body = canonical_json(request.body)
        headers = {"Content-Type": "application/json", **request.headers}
        if request.signed:
            headers["Idempotency-Key"] = message_id
            headers["X-Correlation-ID"] = correlation_id
            # Standard Webhooks (`webhook-id` is the delivery's idempotency key) and legacy.
            headers.update(await self._signer.headers(tenant_id, message_id=message_id, body=body))
        return await post_signed(
            self._http, vetted, body, headers=headers, timeout_s=SEND_TIMEOUT_S
        )


def policy_of_row(
    box: SecretBox, tenant_id: str, row: Mapping[Any, Any], default: EscalationPolicy
) -> EscalationPolicy:
    """A workflow's own levels, else its named policy's, the tenant's, the default; all rules."""
    return effective_policy(
        open_policy(box, tenant_id, row["escalation_policy"]),
        open_policy(box, tenant_id, row["named_policy"], NAMED_ESCALATION_POLICIES),
        open_policy(box, tenant_id, row["tenant_policy"], TENANT_ESCALATION_POLICIES),
        default,
    )


def open_policy(
    box: SecretBox,
    tenant_id: str,
    sealed: str | None,
    column: SealedColumn = ESCALATION_POLICIES,
) -> EscalationPolicy | None:
    """Open a sealed workflow (or tenant) policy; None when there is none."""
    if not sealed:
        return None
    plain = box.decrypt(sealed, context=column.context(tenant_id))
    return EscalationPolicy.model_validate_json(plain)


def delivered(result: HttpResult) -> bool:
    """Tell whether the target accepted the message (any 2xx)."""
    return result.status is not None and 200 <= result.status < 300


def worth_retrying(result: HttpResult) -> bool:
    """A network failure, 408, 429 or 5xx may pass; any other answer will not."""
    if result.status is None:
        return not (result.error or "").startswith(("egress refused", "no escalation webhook"))
    return result.status in (408, 429) or result.status >= 500


def describe(result: HttpResult) -> str:
    """One line: the HTTP status or why nothing came back."""
    return f"HTTP {result.status}" if result.status else (result.error or "no response")
