"""A pipeline per fault test: its own database, API app, task queue and worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client

from api.app import create_app
from settings import Settings
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from workflows.incident_workflow import IncidentWorkflow


@dataclass
class Pipeline:
    """The API (in-process), its tenant, and helpers to run a worker and read incidents."""

    settings: Settings
    app: FastAPI
    http: httpx.AsyncClient
    tenant: TenantCredentials
    temporal: Client
    workdir: Path

    def worker_process(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `python -m worker` for this pipeline's queue (so it can be SIGKILLed)."""
        s = self.settings
        env = {
            **os.environ,
            "AWFDRS_DATABASE_URL": s.database_url,
            "AWFDRS_REDIS_URL": s.redis_url,
            "AWFDRS_TEMPORAL_ADDRESS": s.temporal_address,
            "AWFDRS_TASK_QUEUE": s.task_queue,
            "AWFDRS_ENV": "development",
            "AWFDRS_LOG_FORMAT": "text",
        }
        if s.policy_dir:
            env["AWFDRS_POLICY_DIR"] = str(s.policy_dir)
        env.update(extra_env or {})
        with open(self.workdir / "worker.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    async def send(self, body: dict[str, Any]) -> httpx.Response:
        """POST one event as the pipeline's tenant."""
        return await self.http.post("/api/v1/events", json=body, headers=self.tenant.headers)

    async def reached(self, keys: set[str], expected: int, timeout: float = 60) -> int:
        """Sum the event counts the incident workflows report, waiting up to `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        total = 0
        while asyncio.get_running_loop().time() < deadline:
            try:
                views = [
                    await self.temporal.get_workflow_handle(k).query(IncidentWorkflow.status)
                    for k in keys
                ]
                total = sum(v.event_count for v in views)
            except Exception:  # a workflow not started yet, or Temporal restarting
                total = -1
            if total == expected:
                return total
            await asyncio.sleep(0.3)
        return total


PipelineFactory = Callable[..., Any]


@pytest.fixture
async def pipeline(
    isolated_settings: Settings, temporal_client: Client, tmp_path: Path
) -> AsyncIterator[PipelineFactory]:
    """Build a pipeline with optional setting overrides; tears everything down after."""
    stack: list[Any] = []

    async def build(temporal: Client | None = None, **overrides: Any) -> Pipeline:
        settings = isolated_settings.model_copy(
            update={
                "task_queue": f"fault-{uuid.uuid4().hex}",
                "dispatcher_poll_interval_s": 0.2,
                **overrides,
            }
        )
        client = temporal or temporal_client
        app = create_app(settings, temporal=client)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        stack.append(http)
        created = (
            await http.post(
                "/api/v1/tenants",
                json={"name": uuid.uuid4().hex[:12]},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        ).json()
        tenant = TenantCredentials(uuid.UUID(created["id"]), created["name"], created["api_key"])
        return Pipeline(settings, app, http, tenant, client, tmp_path)

    yield build
    for resource in reversed(stack):
        if isinstance(resource, httpx.AsyncClient):
            await resource.aclose()
        else:
            await resource.__aexit__(None, None, None)
