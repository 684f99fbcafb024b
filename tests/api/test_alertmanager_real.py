"""A real Alertmanager delivers to the webhook intake: its alert becomes an incident, and its
resolution resolves it."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from devstack.http_target import CallbackServer, Reply
from devstack.process import free_port, port_in_use, spawn, stop
from settings import Settings
from tests.conftest import ADMIN_TOKEN
from worker import activity_set, build_worker

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(
    ALERTMANAGER is None,
    reason="prometheus-alertmanager is not installed (`apt-get install prometheus-alertmanager`;"
    " .ci/run installs it)",
)
SLOW = {
    "max_attempts": 3,
    "initial_interval_s": 3600,
    "multiplier": 1,
    "max_interval_s": 3600,
    "jitter": 0,
}


def _wait_port(port: int) -> None:
    for _ in range(200):
        if port_in_use(port):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def api(isolated_settings: Settings, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The API as a real HTTP server on an isolated database, and its task queue."""
    port, queue = free_port(), f"am-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "AWFDRS_DATABASE_URL": isolated_settings.database_url,
        "AWFDRS_REDIS_URL": isolated_settings.redis_url,
        "AWFDRS_TEMPORAL_ADDRESS": isolated_settings.temporal_address,
        "AWFDRS_ENV": "development",
        "AWFDRS_ADMIN_TOKEN": ADMIN_TOKEN,
        "AWFDRS_API_PORT": str(port),
        "AWFDRS_TASK_QUEUE": queue,
        "AWFDRS_DISPATCHER_POLL_INTERVAL_S": "0.2",
    }
    proc = spawn([sys.executable, "-m", "api"], log_path=tmp_path / "api.log", env=env)
    _wait_port(port)
    yield f"http://127.0.0.1:{port}", queue
    stop(proc)


def _alertmanager_config(api_url: str, key: str) -> str:
    return f"""
route:
  receiver: awfdrs
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: awfdrs
    webhook_configs:
      - url: "{api_url}/api/v1/integrations/alertmanager?workflow=monitoring"
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: "{key}"
"""


async def _incidents(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        await http.get("/api/v1/incidents", params={"workflow": "monitoring"}, headers=headers)
    ).json()["items"]
    return items


async def test_alertmanager_alert_opens_and_its_resolution_resolves_an_incident(
    api: tuple[str, str],
    isolated_settings: Settings,
    temporal_client: Client,
    tmp_path: Path,
) -> None:
    api_url, queue = api
    async with (
        httpx.AsyncClient(base_url=api_url, timeout=10) as http,
        CallbackServer([Reply(503)]) as callback,
        activity_set(isolated_settings) as activities,
        build_worker(temporal_client, activities, queue),
    ):
        tenant = (
            await http.post(
                "/api/v1/tenants",
                json={"name": "am"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        ).json()
        headers = {"Authorization": f"Bearer {tenant['api_key']}"}
        registered = await http.post(
            "/api/v1/workflows",
            headers=headers,
            json={"name": "monitoring", "callback_url": callback.url, "retry_policy": SLOW},
        )
        assert registered.status_code == 201
        config = tmp_path / "alertmanager.yml"
        config.write_text(_alertmanager_config(api_url, tenant["api_key"]))
        am_port = free_port()
        assert ALERTMANAGER is not None
        manager = spawn(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            log_path=tmp_path / "alertmanager.log",
        )
        try:
            _wait_port(am_port)
            alert = {
                "labels": {"alertname": "DiskFull", "instance": "db1", "severity": "critical"},
                "annotations": {"summary": "disk full on db1"},
                "startsAt": datetime.now(UTC).isoformat(),
                "generatorURL": "http://prometheus.example/graph",
            }
            am = f"http://127.0.0.1:{am_port}/api/v2/alerts"
            assert (await http.post(am, json=[alert])).status_code == 200
            opened = await _until(
                lambda: _incidents(http, headers),
                lambda items: bool(items) and items[0]["status"] == "waiting",
            )
            assert opened[0]["error_code"] == "ALERT"
            ended = {**alert, "endsAt": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}
            assert (await http.post(am, json=[ended])).status_code == 200
            resolved = await _until(
                lambda: _incidents(http, headers), lambda items: items[0]["status"] == "resolved"
            )
        finally:
            stop(manager)
    assert resolved[0]["id"] == opened[0]["id"]


async def _until(fetch: Any, done: Any, timeout: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fetch()
        if done(value):
            return value
        assert asyncio.get_running_loop().time() < deadline, f"never held; last {value}"
        await asyncio.sleep(0.3)
