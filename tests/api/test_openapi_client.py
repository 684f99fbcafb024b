"""A client generated from /openapi.json by `openapi-python-client` works against the API."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from api.webhook_docs import IncidentCallback
from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.api.served import ServedApi, served_api
from tests.conftest import ADMIN_TOKEN
from tests.utils.builders import failure_event
from worker import activity_set, build_worker

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "awfdrs_generated_client"


@pytest.fixture
def queue() -> str:
    """The task queue of this test's API and worker."""
    return f"client-{uuid.uuid4().hex}"


@pytest.fixture
def served(isolated_settings: Settings, queue: str, tmp_path: Path) -> Iterator[ServedApi]:
    """The API as a real process on an isolated database, dispatching to `queue`."""
    with served_api(
        isolated_settings,
        tmp_path / "api.log",
        AWFDRS_TASK_QUEUE=queue,
        AWFDRS_DISPATCHER_POLL_INTERVAL_S="0.2",
    ) as api:
        yield api


@pytest.fixture
def generated(served: ServedApi, tmp_path: Path) -> Iterator[ModuleType]:
    """The client package generated from the served document, imported from a tmp dir."""
    spec = tmp_path / "openapi.json"
    spec.write_text(httpx.get(f"{served.url}/openapi.json", timeout=10).text)
    config = tmp_path / "generator.yml"
    config.write_text("post_hooks: []\n")  # no formatter run: only importing matters here
    command = [str(GENERATOR), "generate", "--path", str(spec), "--config", str(config)]
    subprocess.run(
        [*command, "--meta", "none", "--output-path", str(tmp_path / PACKAGE)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def _tenant_client(base_url: str) -> Any:
    """Create a tenant with the admin token; return a client authenticated as its key."""
    client, models = _module("client"), _module("models")
    create_tenant = _module("api.admin.create_tenant")
    async with client.AuthenticatedClient(base_url=base_url, token=ADMIN_TOKEN) as admin:
        created = await create_tenant.asyncio(
            client=admin, body=models.TenantCreate(name=f"gen-{uuid.uuid4().hex[:8]}")
        )
    assert isinstance(created, models.TenantCreated), created
    return client.AuthenticatedClient(base_url=base_url, token=created.api_key)


async def _read_incident(tenant: Any, incident_key: str) -> Any:
    get_incident, models = _module("api.incidents.get_incident"), _module("models")
    for _ in range(150):
        found = await get_incident.asyncio(client=tenant, incident_id=incident_key)
        if isinstance(found, models.IncidentDetail):
            return found
        assert isinstance(found, models.Problem) and found.status == 404, found
        await asyncio.sleep(0.2)
    raise AssertionError(f"incident {incident_key} never appeared")


async def test_a_generated_client_sends_an_event_and_reads_its_incident_back(
    generated: ModuleType,
    served: ServedApi,
    isolated_settings: Settings,
    temporal_client: Client,
    queue: str,
) -> None:
    models = _module("models")
    register = _module("api.workflows.register_workflow")
    ingest = _module("api.events.ingest_event")
    async with (
        CallbackServer([Reply(200)]) as callback,
        activity_set(isolated_settings) as activities,
        build_worker(temporal_client, activities, queue),
    ):
        async with await _tenant_client(served.url) as tenant:
            workflow = models.WorkflowCreate(name="billing-sync", callback_url=callback.url)
            registered = await register.asyncio(client=tenant, body=workflow)
            assert isinstance(registered, models.WorkflowOut), registered
            event = models.EventIn.from_dict(failure_event())
            accepted = await ingest.asyncio(client=tenant, body=event)
            assert isinstance(accepted, models.EventAccepted), accepted
            assert accepted.status == "accepted"
            incident = await _read_incident(tenant, accepted.incident_key)
            assert incident.workflow_id == accepted.incident_key
            assert incident.source_workflow == "billing-sync"
            missing = await _module("api.incidents.get_incident").asyncio(
                client=tenant, incident_id=str(uuid.uuid4())
            )
            assert isinstance(missing, models.Problem) and missing.status == 404
        for _ in range(100):
            if callback.calls:
                break
            await asyncio.sleep(0.1)
        # The callback AWFDRS sent matches the `incidentCallback` webhook it documents.
        body = json.loads(callback.calls[0].raw)
        sent = IncidentCallback.model_validate(body)
        assert sent.model_dump() == body  # every field documented, none left out
        assert sent.incident_key == accepted.incident_key
