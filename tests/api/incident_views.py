"""Reading incidents through the operator API while their workflows run."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import TenantCredentials


async def wait_for_incident(
    http: httpx.AsyncClient, tenant: TenantCredentials, workflow_id: str, status: str | None = None
) -> dict[str, Any]:
    """The listed incident of `workflow_id`, once it is recorded (in `status`, when given)."""
    for _ in range(200):
        items = (await http.get("/api/v1/incidents", headers=tenant.headers)).json()["items"]
        found: list[dict[str, Any]] = [i for i in items if i["workflow_id"] == workflow_id]
        if found and (status is None or found[0]["status"] == status):
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"incident {workflow_id} never reached {status}")


async def timeline(
    http: httpx.AsyncClient, tenant: TenantCredentials, incident_id: str
) -> list[dict[str, Any]]:
    """The entries of the incident's timeline."""
    response = await http.get(f"/api/v1/incidents/{incident_id}/timeline", headers=tenant.headers)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries
