"""Every part running: orderings of failures and successes, stale payloads, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from devstack.http_target import CallbackServer, Reply
from devstack.temporal import EmbeddedTemporal
from tests.conftest import ADMIN_TOKEN
from tests.faults.conftest import Pipeline, PipelineFactory
from tests.faults.support import QUICK, first_call, incident_result
from tests.utils.builders import failure_event, register_workflow
from tests.utils.incidents import keep_history
from worker import activity_set, build_worker
from workflows.converter import DATA_CONVERTER

T0 = datetime.now(UTC) - timedelta(minutes=10)


def _at(offset_s: float) -> str:
    return (T0 + timedelta(seconds=offset_s)).isoformat()


def failed(offset_s: float, **fields: Any) -> dict[str, Any]:
    """A step failure that happened `offset_s` after T0."""
    return failure_event(occurred_at=_at(offset_s), **fields)


def succeeded(offset_s: float) -> dict[str, Any]:
    """The same step succeeding `offset_s` after T0."""
    return failure_event(event_type="step.succeeded", error=None, occurred_at=_at(offset_s))


async def send_batch(p: Pipeline, events: list[dict[str, Any]]) -> set[str]:
    """POST events as one batch (one commit, so one dispatcher pass); return incident keys."""
    response = await p.http.post(
        "/api/v1/events/batch", json={"events": events}, headers=p.tenant.headers
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert all(r["status"] == 202 for r in results), results
    return {r["incident_key"] for r in results if r["incident_key"]}


async def drained(p: Pipeline, timeout: float = 30) -> None:
    """Wait until the dispatcher has delivered everything in the outbox."""
    conn = await asyncpg.connect(p.settings.plain_database_url)
    try:
        for _ in range(int(timeout / 0.1)):
            if await conn.fetchval("SELECT count(*) FROM event_outbox") == 0:
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError("the outbox never drained")


@dataclass(frozen=True)
class Ordering:
    """Batches sent one after another (each drained first), and the incident's fate."""

    sends: list[list[dict[str, Any]]]
    calls: int  # callback calls the incident makes (the callback always answers 200)
    resolved_by: str  # start of the close reason


ORDERINGS = {
    "success after the failure, one pass": Ordering(
        [[failed(0), succeeded(1)]], 0, "success event"
    ),
    "success before the failure happened, one pass": Ordering(
        [[succeeded(0), failed(1)]], 1, "retry #1"
    ),
    "success stored before its incident exists": Ordering(
        [[succeeded(1)], [failed(0)]], 0, "success event"
    ),
    "an older success does not resolve a newer failure": Ordering(
        [[succeeded(0)], [failed(1)]], 1, "retry #1"
    ),
    "failures arriving out of order, then a later success": Ordering(
        [[failed(2), failed(0), failed(1), succeeded(3)]], 0, "success event"
    ),
    "a success between failures of one pass": Ordering(
        [[failed(0), succeeded(1), failed(2)]], 1, "retry #1"
    ),
}


@pytest.mark.parametrize("case", ORDERINGS.values(), ids=ORDERINGS.keys())
async def test_orderings_end_in_the_right_state(pipeline: PipelineFactory, case: Ordering) -> None:
    p: Pipeline = await pipeline()
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer([Reply(200)]) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=QUICK)
        keys: set[str] = set()
        for batch in case.sends:
            keys |= await send_batch(p, batch)
            await drained(p)
        [key] = keys
        result = await incident_result(p, key)
    assert result.status == "resolved"
    assert (result.reason or "").startswith(case.resolved_by), result.reason
    assert len(server.calls) == case.calls


async def test_a_success_then_a_newer_failure_keep_the_incident_open(
    pipeline: PipelineFactory,
) -> None:
    p: Pipeline = await pipeline()
    slow = {**QUICK, "initial_interval_s": 3, "max_interval_s": 3}
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer([Reply(503), Reply(200)]) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=slow)
        [key] = await send_batch(p, [failed(0)])
        await first_call(server)
        await send_batch(p, [succeeded(1), failed(2)])  # the step broke again after the success
        result = await incident_result(p, key)
    assert (result.status, result.reason) == ("resolved", "retry #2 succeeded")
    assert result.event_count == 3


async def test_an_older_failure_never_replaces_the_newer_payload(
    pipeline: PipelineFactory,
) -> None:
    p: Pipeline = await pipeline()
    slow = {**QUICK, "initial_interval_s": 2, "max_interval_s": 2}
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer([Reply(503), Reply(200)]) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=slow)
        newest, older = failed(2, payload={"v": 2}), failed(1, payload={"v": 1})
        [key] = await send_batch(p, [newest, older])  # newest first in outbox order
        await first_call(server)
        await send_batch(p, [failed(0, payload={"v": 0})])  # arrives last, happened first
        result = await incident_result(p, key)
    assert result.status == "resolved"
    assert [call.body["payload"] for call in server.calls] == [{"v": 2}, {"v": 2}]


@pytest.fixture
def strict_temporal(tmp_path: Path) -> Iterator[EmbeddedTemporal]:
    """A dev server that refuses a fourth signal to any one workflow execution."""
    server = EmbeddedTemporal(
        tmp_path / "temporal",
        headless=True,
        extra_args=("--dynamic-config-value", "history.maximumSignalsPerExecution=3"),
    )
    server.start()
    yield server
    server.stop()


async def test_a_poison_group_is_dead_lettered_and_replay_delivers_it(
    pipeline: PipelineFactory, strict_temporal: EmbeddedTemporal
) -> None:
    client = await Client.connect(strict_temporal.address, data_converter=DATA_CONVERTER)
    p: Pipeline = await pipeline(
        temporal=client, temporal_address=strict_temporal.address, dispatcher_max_failures=3
    )
    policy = {**QUICK, "initial_interval_s": 600, "max_interval_s": 600}
    await register_workflow(p.http, p.tenant, retry_policy=policy)
    async with activity_set(p.settings) as own, build_worker(client, own, p.settings.task_queue):
        for n in range(3):  # the incident uses up its allowance of signals
            [poison_key] = await send_batch(p, [failed(n)])
            await drained(p)
        await send_batch(p, [failed(3)])  # this group can never be delivered to that run
        healthy = set()
        for n in range(8):  # other incidents keep flowing while the poison group fails
            healthy |= await send_batch(p, [failed(n, step=f"other-{n}")])
            await asyncio.sleep(0.5)
        letters = await _dead_letters(p, expected=1)
        assert await p.reached(healthy, 8, timeout=30) == 8
    [letter] = letters
    assert (letter["incident_key"], letter["failures"]) == (poison_key, 3)
    assert "exceeded workflow execution limit for signal events" in letter["error"]
    assert p.app.state.dispatcher.health.failing is False  # one bad group is not an outage

    strict_temporal.stop()  # the operator lifts the limit, then replays
    strict_temporal.extra_args = ()
    strict_temporal.start()
    replayed = await p.http.post(
        f"/api/v1/dead-letters/{letter['id']}/replay", headers=p.tenant.headers
    )
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["replayed_by"]
    again = await p.http.post(
        f"/api/v1/dead-letters/{letter['id']}/replay", headers=p.tenant.headers
    )
    assert again.status_code == 409
    async with activity_set(p.settings) as own, build_worker(client, own, p.settings.task_queue):
        assert await p.reached({poison_key}, 4, timeout=30) == 4


async def _dead_letters(p: Pipeline, *, expected: int, timeout: float = 40) -> list[Any]:
    for _ in range(int(timeout / 0.25)):
        page = await p.http.get("/api/v1/dead-letters", headers=p.tenant.headers)
        assert page.status_code == 200, page.text
        if len(items := page.json()["items"]) >= expected:
            return list(items)
        await asyncio.sleep(0.25)
    raise AssertionError("no dead letter appeared")


async def test_dead_letters_are_tenant_scoped(pipeline: PipelineFactory) -> None:
    p: Pipeline = await pipeline()
    conn = await asyncpg.connect(p.settings.plain_database_url)
    try:
        letter_id = await conn.fetchval(
            """INSERT INTO dead_letters (id, tenant_id, incident_key, event_ids, failures, error,
                   first_queued_at)
               VALUES (gen_random_uuid(), $1, 'incident:x', '{}', 10, 'boom', now())
               RETURNING id""",
            p.tenant.id,
        )
    finally:
        await conn.close()
    other = await pipeline()
    assert (
        await other.http.get(f"/api/v1/dead-letters/{letter_id}", headers=other.tenant.headers)
    ).status_code == 404
    assert (
        await other.http.post(
            f"/api/v1/dead-letters/{letter_id}/replay", headers=other.tenant.headers
        )
    ).status_code == 404
    mine = await p.http.get(f"/api/v1/dead-letters/{letter_id}", headers=p.tenant.headers)
    assert mine.status_code == 200


async def test_a_malformed_row_is_dead_lettered_at_once(
    pipeline: PipelineFactory,
) -> None:
    p: Pipeline = await pipeline()
    await register_workflow(p.http, p.tenant)
    [key] = await send_batch(p, [failed(0)])
    conn = await asyncpg.connect(p.settings.plain_database_url)
    try:
        event_id = await conn.fetchval("SELECT id FROM events WHERE incident_key = $1", key)
        await conn.execute("DELETE FROM event_outbox")
        # A row whose key is not one this system writes: no retry could deliver it.
        await conn.execute(
            "INSERT INTO event_outbox (event_id, tenant_id, incident_key) VALUES ($1, $2, $3)",
            event_id,
            p.tenant.id,
            "garbage-key",
        )
    finally:
        await conn.close()
    p.app.state.dispatcher.wake()
    [letter] = await _dead_letters(p, expected=1)
    assert letter["failures"] == 1 and "malformed outbox key" in letter["error"]
    await drained(p)


@pytest.mark.parametrize("what", ["workflow", "tenant"])
async def test_deactivation_ends_a_backing_off_incident_without_another_call(
    pipeline: PipelineFactory, what: str
) -> None:
    p: Pipeline = await pipeline()
    backoff = {**QUICK, "initial_interval_s": 2, "max_interval_s": 2}
    async with (
        activity_set(p.settings) as own,
        build_worker(p.temporal, own, p.settings.task_queue),
        CallbackServer([Reply(503)]) as server,
    ):
        await register_workflow(p.http, p.tenant, callback_url=server.url, retry_policy=backoff)
        [key] = await send_batch(p, [failed(0)])
        await first_call(server)
        if what == "workflow":
            changed = await p.http.patch(
                "/api/v1/workflows/billing-sync", json={"active": False}, headers=p.tenant.headers
            )
        else:
            changed = await p.http.patch(
                f"/api/v1/tenants/{p.tenant.id}",
                json={"active": False},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        assert changed.status_code == 200, changed.text
        result = await incident_result(p, key)
        await asyncio.sleep(2.5)  # another backoff's worth: nothing more may arrive
        if what == "workflow":
            await keep_history(p.temporal.get_workflow_handle(key), "deactivated_suppressed")
    assert (result.status, len(server.calls)) == ("suppressed", 1)
    assert "deactivated" in (result.reason or "")
