"""Fault injection with a ledger: lost = 0, duplicate effects = 0, attempts beyond cap = 0."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from email.utils import formatdate
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from temporalio.client import Client

from devstack.http_target import CallbackServer, Reply
from devstack.temporal import EmbeddedTemporal
from tests.faults.conftest import Pipeline, PipelineFactory
from tests.faults.support import QUICK, Sender, first_call, incident_result, ledger_of
from tests.utils.builders import register_workflow
from tests.utils.incidents import keep_history
from worker import activity_set, build_worker
from workflows.converter import DATA_CONVERTER
from workflows.incident_workflow import IncidentWorkflow


def _policies_with_vendors(tmp: Path, vendors_yaml: str) -> Path:
    shipped = Path(str(files("rules")))
    for name in ("error_codes.yaml", "retry_policies.yaml", "escalation.yaml"):
        shutil.copy(shipped / name, tmp / name)
    (tmp / "vendors.yaml").write_text(vendors_yaml)
    return tmp


def _policies_with_slow_vendor(tmp: Path) -> Path:
    return _policies_with_vendors(tmp, "vendors:\n  slowvendor:\n    call_timeout_s: 1\n")


# One counted failure opens this vendor's circuit for an hour.
TOUCHY_VENDOR = """
vendors:
  touchy:
    circuit_breaker:
      window_size: 2
      minimum_calls: 1
      failure_rate_threshold: 0.5
      open_duration_s: 3600
      half_open_probes: 1
"""


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
        result = await incident_result(p, next(iter(sender.incidents)))
        ledger = await ledger_of(p, sender, server)
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
    *,
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
        result = await incident_result(p, next(iter(sender.incidents)))
        ledger = await ledger_of(p, sender, server)
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
        await first_call(server)
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
        result = await incident_result(p, key)
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
        result = await incident_result(p, next(iter(sender.incidents)))
        ledger = await ledger_of(p, sender, server)
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
            await first_call(server)
            worker.send_signal(signal.SIGKILL)  # mid-call: the call's result is never read
            worker.wait(10)
            worker = p.worker_process()
            result = await incident_result(p, next(iter(sender.incidents)), timeout=90)
            ledger = await ledger_of(p, sender, server)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    assert result.status == "resolved"
    ledger.assert_clean()


async def _breaker(p: Pipeline, vendor: str) -> dict[Any, Any]:
    redis = Redis.from_url(p.settings.redis_url)
    try:
        return await redis.hgetall(f"cb:{{{p.tenant.id}}}:{vendor}")
    finally:
        await redis.aclose()


async def _first_attempt_cut_off(
    p: Pipeline, server: CallbackServer, env: dict[str, str] | None = None
) -> tuple[Sender, subprocess.Popen[bytes]]:
    """Send a failure naming `touchy`, SIGKILL the worker during its first callback, and start
    another: the attempt ends without an outcome once its heartbeat times out."""
    await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=QUICK)
    worker = p.worker_process(env)
    try:
        sender = Sender(p)
        assert await sender.send(vendor="touchy")
        await first_call(server)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    return sender, p.worker_process(env)


async def test_an_attempt_cut_off_by_a_worker_crash_is_not_held_against_the_vendor(
    pipeline: PipelineFactory, tmp_path: Path
) -> None:
    # The attempt ends without an outcome (its heartbeat times out): nothing shows the vendor
    # failed, so its breaker must not count it; counted, it would open for an hour.
    p: Pipeline = await pipeline(policy_dir=_policies_with_vendors(tmp_path, TOUCHY_VENDOR))
    async with CallbackServer([Reply(200, delay_s=4), Reply(200)]) as server:
        sender, worker = await _first_attempt_cut_off(p, server)
        try:
            key = next(iter(sender.incidents))
            result = await incident_result(p, key, timeout=90)
            await keep_history(p.temporal.get_workflow_handle(key), "no_outcome_uncounted")
            ledger = await ledger_of(p, sender, server)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    breaker = await _breaker(p, "touchy")
    assert (result.status, result.attempts) == ("resolved", 2)
    assert breaker.get(b"state", b"closed") == b"closed"
    assert b"0" not in breaker.get(b"window", b""), breaker  # no failure counted
    ledger.assert_clean()


async def test_with_the_patch_held_a_cut_off_attempt_is_counted_as_before(
    pipeline: PipelineFactory, tmp_path: Path
) -> None:
    # A worker deployed with `uncounted-no-outcome` held behaves as the release before it, so
    # a rollback finds nothing it cannot replay: the failure is counted and opens the circuit.
    p: Pipeline = await pipeline(policy_dir=_policies_with_vendors(tmp_path, TOUCHY_VENDOR))
    held = {"AWFDRS_WORKER_HELD_PATCHES": "uncounted-no-outcome"}
    async with CallbackServer([Reply(200, delay_s=4), Reply(200)]) as server:
        sender, worker = await _first_attempt_cut_off(p, server, held)
        try:
            handle = p.temporal.get_workflow_handle(next(iter(sender.incidents)))
            for _ in range(300):  # the heartbeat times out after 5 s, then the count
                if (await _breaker(p, "touchy")).get(b"state") == b"open":
                    break
                await asyncio.sleep(0.2)
            view = await handle.query(IncidentWorkflow.status)
            await keep_history(handle, "no_outcome_counted_held")
            await handle.terminate("test over")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    breaker = await _breaker(p, "touchy")
    assert breaker.get(b"state") == b"open", breaker  # one counted failure opened it
    assert (view.attempts, len(server.calls)) == (1, 1)  # the circuit holds the second back


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
            ledger = await ledger_of(p, sender, server)
    finally:
        temporal.stop()
    assert ledger.accepted == ledger.stored == ledger.reached_workflows == 30
    ledger.assert_clean()


async def test_worker_sigkilled_during_a_backoff(pipeline: PipelineFactory) -> None:
    p: Pipeline = await pipeline()
    backoff = {**QUICK, "initial_interval_s": 2, "max_interval_s": 2}
    async with CallbackServer([Reply(503), Reply(200)]) as server:
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=backoff)
        worker = p.worker_process()
        try:
            sender = Sender(p)
            assert await sender.send()
            await first_call(server)
            await asyncio.sleep(0.3)  # the first call has returned: the backoff timer runs
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            await asyncio.sleep(2.5)  # the timer fires while no worker is alive
            worker = p.worker_process()
            result = await incident_result(p, next(iter(sender.incidents)), timeout=90)
            ledger = await ledger_of(p, sender, server)
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
            await first_call(server)
            valkey.stop()
            for _ in range(10):  # ingestion keeps accepting while Redis is down
                assert await sender.send()
            await asyncio.sleep(2)
            calls_while_down = len(server.calls)
            valkey.start()
            result = await incident_result(p, next(iter(sender.incidents)))
            ledger = await ledger_of(p, sender, server)
    finally:
        valkey.stop()
    assert calls_while_down == 1
    assert result.status == "resolved"
    ledger.assert_clean()
