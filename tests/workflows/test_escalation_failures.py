"""A page that cannot be delivered is a failed action; the incident stays escalated and moves on."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from devstack.http_target import Call, CallbackServer, Reply
from devstack.postgres import EmbeddedPostgres
from models.migrate import upgrade_database
from settings import Settings
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter, keep_history
from tests.utils.signatures import SignatureAudit
from worker import activity_set, build_worker
from workflows.incident_state import IncidentResult
from workflows.incident_workflow import IncidentWorkflow

ONE_ATTEMPT = {
    "max_attempts": 1,
    "initial_interval_s": 1,
    "multiplier": 1,
    "max_interval_s": 1,
    "jitter": 0.0,
}
CLOSED_PORT = "http://127.0.0.1:9/page"  # nothing listens on the discard port
Handle = WorkflowHandle[IncidentWorkflow, IncidentResult]


async def _escalated_to(env: WorkflowEnvironment, handle: Handle, level: int) -> None:
    for _ in range(200):
        view = await handle.query(IncidentWorkflow.status)
        if view.status == "escalated" and view.escalation_level >= level:
            return
        await env.sleep(30)
    raise AssertionError(f"level {level} was never reached")


async def _settled(env: WorkflowEnvironment, database_url: str, tenant_id: uuid.UUID) -> None:
    """Wait until no page is still being retried (Temporal retries a refused connection)."""
    for _ in range(200):
        rows = await _escalations(database_url, tenant_id)
        if rows and all(status != "running" for _, status in rows):
            return
        await env.sleep(5)
    raise AssertionError("a page never settled")


async def _escalations(database_url: str, tenant_id: uuid.UUID) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT attempt, status FROM actions WHERE tenant_id = $1"
            " AND action_type = 'escalate' ORDER BY attempt",
            tenant_id,
        )
    finally:
        conn.terminate()  # PostgreSQL may be stopping under this test: no polite goodbye
    return [(row["attempt"], row["status"]) for row in rows]


async def test_an_unreachable_target_is_a_failed_page_and_level_2_follows_on_schedule(
    skipping: IncidentStarter,
    skipping_env: WorkflowEnvironment,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    settings: Settings,
) -> None:
    async with CallbackServer([Reply(503)]) as server:
        await register_workflow(
            http,
            tenant,
            callback_url=server.url,
            retry_policy=ONE_ATTEMPT,
            escalation_webhook_url=CLOSED_PORT,
        )
        handle = await skipping.start()
        await _escalated_to(skipping_env, handle, 1)
        await _settled(skipping_env, settings.plain_database_url, tenant.id)
        assert await _escalations(settings.plain_database_url, tenant.id) == [(1, "failed")]
        await skipping_env.sleep(901)  # level 1's acknowledge timeout (rules/escalation.yaml)
        await _escalated_to(skipping_env, handle, 2)
        await _settled(skipping_env, settings.plain_database_url, tenant.id)
        description = await handle.describe()
        view = await handle.query(IncidentWorkflow.status)
        await handle.signal(IncidentWorkflow.kill)
        await handle.result()  # finished here: nothing may hold up the shared test server
        await keep_history(handle, "escalation_target_down")
    assert description.status is not None and description.status.name == "RUNNING"
    assert view.status == "escalated" and "L2" in (view.latest_action or "")
    assert await _escalations(settings.plain_database_url, tenant.id) == [
        (1, "failed"),
        (2, "failed"),
    ]


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[EmbeddedPostgres]:
    """A durable, migrated PostgreSQL this test may stop in the middle of a page."""
    tmp_path.chmod(0o755)
    pg = EmbeddedPostgres(tmp_path / "pg", durable=True)
    pg.start()
    url = pg.url.replace("postgresql://", "postgresql+asyncpg://")
    await asyncio.to_thread(upgrade_database, url)
    yield pg
    pg.stop()


async def test_postgres_down_during_a_page_leaves_the_incident_escalated(
    skipping_env: WorkflowEnvironment,
    settings: Settings,
    own_postgres: EmbeddedPostgres,
    signature_audit: SignatureAudit,
) -> None:
    own = settings.model_copy(update={"database_url": own_postgres.url})
    signature_audit.watch(own_postgres.url)  # its callback and page are signed from there
    app = create_app(own, temporal=skipping_env.client)

    async def outage(_: Call) -> None:
        # PostgreSQL goes away while the page is in flight, and comes back a little later.
        await asyncio.to_thread(own_postgres.stop)
        asyncio.get_running_loop().call_later(3, own_postgres.start)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        CallbackServer([Reply(401)]) as server,
        CallbackServer([Reply(202)]) as pager,
        activity_set(own) as activities,
    ):
        pager.on_call = outage
        created = await http.post(
            "/api/v1/tenants",
            json={"name": uuid.uuid4().hex[:12]},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        tenant = TenantCredentials(
            uuid.UUID(created.json()["id"]), created.json()["name"], created.json()["api_key"]
        )
        await register_workflow(
            http, tenant, callback_url=server.url, escalation_webhook_url=pager.url
        )
        queue = f"test-{uuid.uuid4().hex}"
        async with build_worker(skipping_env.client, activities, queue):
            handle = await IncidentStarter(
                skipping_env.client, tenant, queue, own.plain_database_url
            ).start()
            await _escalated_to(skipping_env, handle, 1)
            for _ in range(100):  # until the page's outcome is recorded, PostgreSQL back
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    if await _escalations(own_postgres.url, tenant.id):
                        break
                await asyncio.sleep(0.2)
            description = await handle.describe()
            view = await handle.query(IncidentWorkflow.status)
            await handle.signal(IncidentWorkflow.kill)
            await handle.result()  # finished here: nothing may hold up the shared test server
    assert pager.calls, "the page was never attempted"
    assert description.status is not None and description.status.name == "RUNNING"
    assert view.status == "escalated"
    assert await _escalations(own_postgres.url, tenant.id) == [(1, "failed")]
