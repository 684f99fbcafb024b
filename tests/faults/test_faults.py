"""Fault injection with a ledger: lost = 0, duplicate effects = 0, attempts beyond cap = 0."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import Callable
from email.utils import formatdate
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from devstack.http_target import CallbackServer, Reply
from devstack.temporal import EmbeddedTemporal
from tests.faults.conftest import Pipeline, PipelineFactory
from tests.faults.ledger import Ledger, build_ledger
from tests.utils.builders import failure_event, register_workflow
from worker import activity_set, build_worker
from workflows.converter import DATA_CONVERTER
from workflows.incident_types import IncidentResult
from workflows.incident_workflow import IncidentWorkflow

QUICK = {
    "max_attempts": 4,
    "initial_interval_s": 0.5,
    "multiplier": 1,
    "max_interval_s": 0.5,
    "jitter": 0,
}


class Sender:
    """Posts events and remembers which idempotency keys the API acknowledged."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.accepted: set[str] = set()
        self.incidents: set[str] = set()
        self.refused = 0

    async def send(self, **overrides: Any) -> bool:
        """POST one event; True when it was acknowledged (2xx)."""
        body = failure_event(**overrides)
        response = await self.p.send(body)
        if response.status_code in (200, 202):
            self.accepted.add(body["idempotency_key"])
            self.incidents.add(response.json()["incident_key"])
            return True
        assert response.status_code == 503, response.text  # never anything but "retry later"
        self.refused += 1
        return False


async def _result(p: Pipeline, key: str, timeout: float = 60) -> IncidentResult:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            handle = p.temporal.get_workflow_handle_for(IncidentWorkflow.run, key)
            return await asyncio.wait_for(handle.result(), timeout)
        except RPCError:  # accepted, not yet started by the dispatcher
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)


async def _ledger(
    p: Pipeline, sender: Sender, server: CallbackServer, max_attempts: int = 4
) -> Ledger:
    reached = await p.reached(sender.incidents, len(sender.accepted))
    return await build_ledger(
        database_url=p.settings.plain_database_url,
        tenant_id=p.tenant.id,
        accepted_keys=sender.accepted,
        reached=reached,
        calls=server.calls,
        max_attempts=int(max_attempts),
    )


async def _first_call(server: CallbackServer) -> None:
    for _ in range(300):
        if server.calls:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the callback was never called")


def _policies_with_slow_vendor(tmp: Path) -> Path:
    shipped = Path(str(files("rules")))
    for name in ("error_codes.yaml", "retry_policies.yaml", "escalation.yaml"):
        shutil.copy(shipped / name, tmp / name)
    (tmp / "vendors.yaml").write_text("vendors:\n  slowvendor:\n    call_timeout_s: 1\n")
    return tmp


async def test_a_callback_slower_than_its_timeout_is_retried_within_the_cap(
    pipeline: PipelineFactory, tmp_path: Path
) -> None:
    p: Pipeline = await pipeline(policy_dir=_policies_with_slow_vendor(tmp_path))
    script = [Reply(200, delay_s=3), Reply(200, delay_s=3), Reply(200)]
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer(script) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=QUICK)
        sender = Sender(p)
        assert await sender.send(vendor="slowvendor")
        result = await _result(p, next(iter(sender.incidents)))
        ledger = await _ledger(p, sender, server)
    assert (result.status, result.attempts) == ("resolved", 3)
    ledger.assert_clean()


def _http_date(seconds_ahead: float) -> str:
    return formatdate(time.time() + seconds_ahead, usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "max_interval_s", "low", "high"),
    [
        pytest.param("3", 5, 2.9, 6, id="seconds, honoured"),
        pytest.param(lambda: _http_date(4), 5, 2.4, 6.5, id="HTTP-date, honoured"),
        pytest.param("3600", 1.5, 1.4, 4.5, id="clamped to the policy's max interval"),
        pytest.param("1e12", 0.5, 0.4, 3, id="absurd, ignored"),
        pytest.param("NaN", 0.5, 0.4, 3, id="not a number, ignored"),
        pytest.param("-7", 0.5, 0.4, 3, id="negative, ignored"),
    ],
)
async def test_retry_after_is_honoured_within_the_policy(
    pipeline: PipelineFactory,
    retry_after: str | Callable[[], str],
    max_interval_s: float,
    low: float,
    high: float,
) -> None:
    p: Pipeline = await pipeline()
    value = retry_after() if callable(retry_after) else retry_after
    policy = {**QUICK, "max_interval_s": max_interval_s}
    script = [Reply(503, headers={"Retry-After": value}), Reply(200)]
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer(script) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=policy)
        sender = Sender(p)
        assert await sender.send()
        result = await _result(p, next(iter(sender.incidents)))
        ledger = await _ledger(p, sender, server)
    assert result.status == "resolved"
    first, second = server.calls
    assert low <= second.at - first.at <= high
    ledger.assert_clean()


async def test_an_incident_told_to_wait_forever_can_still_be_killed(
    pipeline: PipelineFactory,
) -> None:
    p: Pipeline = await pipeline()
    policy = {**QUICK, "initial_interval_s": 3000, "max_interval_s": 86_400}
    script = [Reply(503, headers={"Retry-After": "86400"}), Reply(200)]
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer(script) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=policy)
        sender = Sender(p)
        assert await sender.send()
        key = next(iter(sender.incidents))
        await _first_call(server)
        handle = p.temporal.get_workflow_handle_for(IncidentWorkflow.run, key)
        for _ in range(100):
            view = await handle.query(IncidentWorkflow.status)
            if view.status == "waiting":
                break
            await asyncio.sleep(0.1)
        assert view.status == "waiting" and view.next_action_at is not None
        killed = await p.http.post(
            f"/api/v1/incidents/{view.incident_id}/kill",
            json={"reason": "stop waiting"},
            headers=p.tenant.headers,
        )
        assert killed.status_code == 202, killed.text
        result = await _result(p, key)
    assert (result.status, len(server.calls)) == ("killed", 1)


async def test_a_reset_connection_is_retried(pipeline: PipelineFactory) -> None:
    p: Pipeline = await pipeline()
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer([Reply(reset=True), Reply(200)]) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=QUICK)
        sender = Sender(p)
        assert await sender.send()
        result = await _result(p, next(iter(sender.incidents)))
        ledger = await _ledger(p, sender, server)
    assert (result.status, result.attempts) == ("resolved", 2)
    assert [c.status for c in server.calls] == [None, 200]
    ledger.assert_clean()


async def test_worker_sigkilled_during_a_callback(pipeline: PipelineFactory) -> None:
    p: Pipeline = await pipeline()
    async with CallbackServer([Reply(200, delay_s=4), Reply(200)]) as server:
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=QUICK)
        worker = p.worker_process()
        try:
            sender = Sender(p)
            assert await sender.send()
            await _first_call(server)
            worker.send_signal(signal.SIGKILL)  # mid-call: the call's result is never read
            worker.wait(10)
            worker = p.worker_process()
            result = await _result(p, next(iter(sender.incidents)), timeout=90)
            ledger = await _ledger(p, sender, server)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    assert result.status == "resolved"
    ledger.assert_clean()


async def test_temporal_sigkilled_and_restarted_on_its_database_file(
    pipeline: PipelineFactory, tmp_path: Path
) -> None:
    temporal = EmbeddedTemporal(tmp_path / "temporal", headless=True)
    temporal.start()
    try:
        client = await Client.connect(temporal.address, data_converter=DATA_CONVERTER)
        p: Pipeline = await pipeline(temporal=client, temporal_address=temporal.address)
        slow = {**QUICK, "initial_interval_s": 3600, "max_interval_s": 3600}
        async with (
            activity_set(p.settings) as own,
            build_worker(client, own, p.settings.task_queue),
            CallbackServer([Reply(503)]) as server,
        ):
            await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=slow)
            sender = Sender(p)
            for n in range(30):
                assert await sender.send(step=f"step-{n % 3}")
                if n == 14:
                    temporal.kill()
            temporal.start()
            ledger = await _ledger(p, sender, server)
    finally:
        temporal.stop()
    assert ledger.accepted == ledger.stored == ledger.reached_workflows == 30
    ledger.assert_clean()


async def test_postgres_stopped_during_ingestion(pipeline: PipelineFactory, tmp_path: Path) -> None:
    from devstack.postgres import EmbeddedPostgres
    from models.migrate import upgrade_database

    tmp_path.chmod(0o755)
    pg = EmbeddedPostgres(tmp_path / "pg", durable=True)
    pg.start()
    try:
        await asyncio.to_thread(
            upgrade_database, pg.url.replace("postgresql://", "postgresql+asyncpg://")
        )
        p: Pipeline = await pipeline(database_url=pg.url, dispatcher_enabled=False)
        await register_workflow(p.http, p.tenant)
        sender = Sender(p)
        for n in range(60):
            if n == 20:
                pg.stop()
            if n == 40:
                pg.start()
            await sender.send()
        conn_url = pg.url
        from asyncpg import connect

        conn = await connect(conn_url)
        stored = await conn.fetchval("SELECT count(*) FROM events")
        outbox = await conn.fetchval("SELECT count(*) FROM event_outbox")
        await conn.close()
    finally:
        pg.stop()
    assert sender.refused >= 1
    assert stored == outbox == len(sender.accepted) == 60 - sender.refused


async def test_worker_sigkilled_during_a_backoff(pipeline: PipelineFactory) -> None:
    p: Pipeline = await pipeline()
    backoff = {**QUICK, "initial_interval_s": 2, "max_interval_s": 2}
    async with CallbackServer([Reply(503), Reply(200)]) as server:
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=backoff)
        worker = p.worker_process()
        try:
            sender = Sender(p)
            assert await sender.send()
            await _first_call(server)
            await asyncio.sleep(0.3)  # the first call has returned: the backoff timer runs
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            await asyncio.sleep(2.5)  # the timer fires while no worker is alive
            worker = p.worker_process()
            result = await _result(p, next(iter(sender.incidents)), timeout=90)
            ledger = await _ledger(p, sender, server)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    assert (result.status, result.attempts) == ("resolved", 2)
    ledger.assert_clean()


async def test_redis_stopped_during_remediation(pipeline: PipelineFactory, tmp_path: Path) -> None:
    from devstack.valkey import EmbeddedValkey

    valkey = EmbeddedValkey(tmp_path / "valkey", durable=False)
    valkey.start()
    try:
        p: Pipeline = await pipeline(redis_url=valkey.url)
        async with (
            activity_set(p.settings) as own,
            build_worker(p.temporal, own, p.settings.task_queue),
            CallbackServer([Reply(503), Reply(200)]) as server,
        ):
            await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=QUICK)
            sender = Sender(p)
            assert await sender.send()
            await _first_call(server)
            valkey.stop()
            for _ in range(10):  # ingestion keeps accepting while Redis is down
                assert await sender.send()
            await asyncio.sleep(2)
            calls_while_down = len(server.calls)
            valkey.start()
            result = await _result(p, next(iter(sender.incidents)))
            ledger = await _ledger(p, sender, server)
    finally:
        valkey.stop()
    assert calls_while_down == 1
    assert result.status == "resolved"
    ledger.assert_clean()
