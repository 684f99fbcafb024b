"""PagerDuty Webhooks v3 and Opsgenie webhook bodies, signed as the vendors send them."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx

from tests.conftest import TenantCredentials

PD_SECRET = "pd-subscription-secret-0001"
PD_SECRET_NEXT = "pd-subscription-secret-0002"
SECRETS_PATH = "/api/v1/integrations/{system}/webhook-secrets"


def pagerduty_signature(raw: bytes, *secrets: str) -> str:
    """`X-PagerDuty-Signature`: one `v1=<hex HMAC-SHA256>` per secret, comma-separated."""
    return ",".join(
        "v1=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest() for secret in secrets
    )


def pagerduty_event(
    event_type: str, incident_key: str, *, event_id: str | None = None, who: str = "Jane Doe"
) -> dict[str, Any]:
    """A v3 webhook delivery as PagerDuty documents it (trimmed of links)."""
    return {
        "event": {
            "id": event_id or f"01{uuid.uuid4().hex[:24].upper()}",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": "2026-12-07T10:00:00.000Z",
            "agent": {"id": "PLH1HKV", "summary": who, "type": "user_reference"},
            "client": None,
            "data": {
                "id": "Q0RIJJZL24RC6W",
                "type": "incident",
                "number": 7,
                "status": event_type.removeprefix("incident."),
                "incident_key": incident_key,
                "title": "billing-sync · VENDOR_TIMEOUT · stripe",
                "urgency": "high",
            },
        }
    }


async def post_pagerduty(
    http: httpx.AsyncClient,
    tenant_id: uuid.UUID,
    body: dict[str, Any],
    *secrets: str,
    signature: str | None = None,
) -> httpx.Response:
    """POST a delivery signed with `secrets` (or with the given signature header)."""
    raw = json.dumps(body).encode()
    header = signature if signature is not None else pagerduty_signature(raw, *secrets)
    return await http.post(
        f"/api/v1/integrations/pagerduty/webhooks/{tenant_id}",
        content=raw,
        headers={"Content-Type": "application/json", "X-PagerDuty-Signature": header},
    )


def opsgenie_action(action: str, alias: str, *, username: str = "john.smith") -> dict[str, Any]:
    """An Opsgenie outgoing webhook delivery for one alert action."""
    return {
        "action": action,
        "alert": {
            "alertId": str(uuid.uuid4()),
            "message": "billing-sync · VENDOR_TIMEOUT · stripe",
            "alias": alias,
            "tinyId": "42",
            "username": username,
            "userId": "4e3e7e3c-0000-4000-8000-000000000000",
            "tags": [],
            "updatedAt": 1765101600000000000,
        },
        "source": {"name": "web", "type": "web"},
        "integrationName": "AWFDRS",
        "integrationType": "Webhook",
    }


async def post_opsgenie(
    http: httpx.AsyncClient, tenant_id: uuid.UUID, body: dict[str, Any], token: str
) -> httpx.Response:
    """POST a delivery with the tenant's token in the custom header."""
    return await http.post(
        f"/api/v1/integrations/opsgenie/webhooks/{tenant_id}",
        json=body,
        headers={"X-AWFDRS-Token": token},
    )


async def add_secret(
    http: httpx.AsyncClient, tenant: TenantCredentials, system: str, secret: str | None = None
) -> dict[str, Any]:
    """Store a responder secret through the operator API; return the created listing."""
    response = await http.post(
        SECRETS_PATH.format(system=system),
        headers=tenant.headers,
        json={"secret": secret} if secret else None,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
