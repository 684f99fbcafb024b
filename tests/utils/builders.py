"""Builders for request bodies and registry fixtures."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.conftest import TenantCredentials


def failure_event(workflow: str = "billing-sync", **overrides: Any) -> dict[str, Any]:
    """Return a valid step.failed event body with a fresh idempotency key."""
    body: dict[str, Any] = {
        "idempotency_key": f"key-{uuid.uuid4().hex}",
        "workflow": workflow,
        "event_type": "step.failed",
        "step": "charge-card",
        "vendor": "stripe",
        # Now, not a fixed date: a success resolves only failures that happened before it.
        "occurred_at": datetime.now(UTC).isoformat(),
        "error": {
            "code": "VENDOR_TIMEOUT",
            "message": "upstream timed out after 30s",
            "http_status": 504,
        },
        "payload": {"invoice": "inv-881"},
    }
    body.update(overrides)
    return body


async def register_workflow(
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    name: str = "billing-sync",
    callback_url: str = "http://127.0.0.1:9/callback",
    **fields: Any,
) -> dict[str, Any]:
    """Register a workflow for the tenant and return it."""
    response = await http.post(
        "/api/v1/workflows",
        headers=tenant.headers,
        json={"name": name, "callback_url": callback_url, **fields},
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result
