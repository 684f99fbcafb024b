"""IncidentWorkflow on the real dev server: continue-as-new, the temporal CLI, worker crashes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from temporalio.client import Client

from devstack.http_target import CallbackServer, Reply
from devstack.process import script_path
from settings import Settings
from tests.conftest import TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, failure
from workflows.incident_workflow import IncidentWorkflow
from workflows.signal_payloads import EventBatch, EventSummary

SLOW_POLICY = {
    "max_attempts": 3,
    "initial_interval_s": 3600,
    "multiplier": 2,
    "max_interval_s": 7200,
    "jitter": 0.0,
}


def _events(count: int) -> list[EventSummary]:
    return [failure() for _ in range(count)]


async def test_5000_events_are_counted_exactly_across_continue_as_new(
    live: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW_POLICY)
        batches = [EventBatch(_events(10)) for _ in range(500)]
        handle = await live.start(events=batches[0].events, max_signals_per_run=100)
        for index, batch in enumerate(batches[1:], start=1):
            await handle.signal(IncidentWorkflow.events, batch)
            if index % 25 == 0:  # a redelivery, as after a dispatcher crash before its DELETE
                await handle.signal(IncidentWorkflow.events, batches[index - 1])
        for _ in range(200):
            view = await handle.query(IncidentWorkflow.status)
            if view.event_count == 5000:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        view = await handle.query(IncidentWorkflow.status)
        await handle.signal(IncidentWorkflow.kill)
    assert view.event_count == 5000
    assert view.runs > 1, "continue-as-new never happened"
    assert len(server.calls) == 1


def _cli(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script_path("temporal"), *args, "--address", address],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_temporal_cli_queries_and_kills_a_live_incident(
    live: IncidentStarter,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=SLOW_POLICY)
        handle = await live.start()
        for _ in range(100):
            if (await handle.query(IncidentWorkflow.status)).status == "waiting":
                break
            await asyncio.sleep(0.1)
        query = await asyncio.to_thread(
            _cli,
            settings.temporal_address,
            "workflow",
            "query",
            "--workflow-id",
            handle.id,
            "--name",
            "status",
            "--output",
            "json",
        )
        assert query.returncode == 0, query.stderr
        answer = json.loads(query.stdout)
        view = answer["queryResult"][0]
        assert view["status"] == "waiting"
        assert view["attempts"] == 1
        assert view["event_count"] == 1
        for name, payload in (("pause", None), ("resume", None), ("kill", '{"reason": "cli"}')):
            extra = ["--input", payload] if payload else []
            sent = await asyncio.to_thread(
                _cli,
                settings.temporal_address,
                "workflow",
                "signal",
                "--workflow-id",
                handle.id,
                "--name",
                name,
                *extra,
            )
            assert sent.returncode == 0, sent.stderr
        result = await asyncio.wait_for(handle.result(), 30)
    assert result.status == "killed"
    assert result.reason == "cli"
    assert len(server.calls) == 1


async def test_worker_killed_during_backoff_recovers_and_each_attempt_keeps_its_key(
    temporal_client: Client,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
    tmp_path: Path,
) -> None:
    policy = {
        "max_attempts": 4,
        "initial_interval_s": 2,
        "multiplier": 1,
        "max_interval_s": 2,
        "jitter": 0.0,
    }
    queue = f"crash-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "AWFDRS_DATABASE_URL": settings.database_url,
        "AWFDRS_REDIS_URL": settings.redis_url,
        "AWFDRS_TEMPORAL_ADDRESS": settings.temporal_address,
        "AWFDRS_TASK_QUEUE": queue,
        "AWFDRS_ENV": "development",
        "AWFDRS_LOG_FORMAT": "text",
    }

    def start_worker() -> subprocess.Popen[bytes]:
        with open(tmp_path / "worker.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    async with CallbackServer([Reply(503), Reply(503), Reply(200)]) as server:
        await register_workflow(http, tenant, callback_url=server.url, retry_policy=policy)
        worker = start_worker()
        try:
            handle = await IncidentStarter(
                temporal_client, tenant, queue, settings.plain_database_url
            ).start()
            for _ in range(300):
                if len(server.calls) >= 1:
                    break
                await asyncio.sleep(0.1)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            assert len(server.calls) == 1
            await asyncio.sleep(3)  # the backoff timer fires while no worker runs
            worker = start_worker()
            result = await asyncio.wait_for(handle.result(), 90)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    assert result.status == "resolved"
    keys = server.keys()
    view_prefix = keys[0].rsplit(":", 1)[0]
    assert sorted(set(keys)) == [f"{view_prefix}:{n}" for n in (1, 2, 3)]
