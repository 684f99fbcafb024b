"""The application's role reads and writes what it must, and cannot undo append-only.

The session database is migrated by the superuser; each test logs in as a fresh member of
`awfdrs_app`, created the way `awfdrs migrate --ensure-app-login` and `awfdrs up` create it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client

from api.app import create_app
from devstack.db_roles import APP_ROLE, AppLoginError, ensure_app_login
from devstack.http_target import CallbackServer, Reply
from settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.utils.builders import failure_event
from worker import activity_set, build_worker

# operator_actions: the audit trail of who did what (migration 0012 grants no UPDATE or DELETE).
APPEND_ONLY = ("events", "decisions", "incident_transitions", "operator_actions")
NEVER = ("TRUNCATE", "TRIGGER", "REFERENCES")
# Each would let the application rewrite history or the schema; each must be refused.
REFUSED = [
    "ALTER TABLE events DISABLE TRIGGER events_append_only",
    "ALTER TABLE decisions DISABLE TRIGGER ALL",
    "SET session_replication_role = replica",
    "TRUNCATE events",
    "TRUNCATE incident_transitions",
    "TRUNCATE incidents",
    "TRUNCATE events_default",
    "DROP TABLE events",
    "DROP TABLE tenants",
    "ALTER TABLE incidents ADD COLUMN intruder int",
    "CREATE TABLE intruder (id int)",
    "UPDATE events SET workflow = 'changed'",
    "DELETE FROM events",
    "UPDATE decisions SET reasoning = 'changed'",
    "DELETE FROM incident_transitions",
    "UPDATE events_default SET workflow = 'changed'",
]


def as_role(url: str, role: str, password: str) -> str:
    """Return `url` logging in as `role` instead of its own user."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))


@pytest.fixture
async def app_login(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """A fresh login role in `awfdrs_app`: its name and password."""
    role, password = f"awfdrs_test_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    url = as_role(settings.plain_database_url, role, password)
    assert await ensure_app_login(owner_url=settings.plain_database_url, app_url=url) == role
    yield role, password
    admin = await asyncpg.connect(settings.plain_database_url)
    await admin.execute(f"DROP ROLE {role}")
    await admin.close()


@pytest.fixture
async def as_app(
    settings: Settings, app_login: tuple[str, str]
) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the session database as the application role."""
    conn = await asyncpg.connect(as_role(settings.plain_database_url, *app_login))
    yield conn
    await conn.close()


@pytest.mark.parametrize("statement", REFUSED)
async def test_the_app_role_cannot_rewrite_history_or_the_schema(
    as_app: asyncpg.Connection, statement: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
        await as_app.execute(statement)
    # Refused for lack of privilege, before any row (or the append-only trigger) is reached.
    assert "append-only" not in str(refused.value)


async def test_grants_are_exactly_what_the_application_needs(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.plain_database_url)
    try:
        rows = await conn.fetch(
            "SELECT c.relname, coalesce(pg_partition_root(c.oid), c.oid)::regclass::text AS root,"
            " p.privilege, has_table_privilege($1, c.oid, p.privilege) AS granted "
            "FROM pg_class c CROSS JOIN unnest($2::text[]) AS p(privilege) "
            "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') "
            "AND c.relname <> 'alembic_version'",
            APP_ROLE,
            ["SELECT", "INSERT", "UPDATE", "DELETE", *NEVER],
        )
        owned = await conn.fetchval(
            "SELECT count(*) FROM pg_class WHERE relowner = $1::regrole", APP_ROLE
        )
    finally:
        await conn.close()
    wrong = []
    for row in rows:
        append_only = row["root"] in APPEND_ONLY
        expected = row["privilege"] in ("SELECT", "INSERT") or (
            row["privilege"] in ("UPDATE", "DELETE") and not append_only
        )
        if row["granted"] != expected:
            wrong.append(f"{row['relname']}: {row['privilege']} {row['granted']}")
    assert wrong == [], "a table's grants to awfdrs_app differ from the policy (migration 0007)"
    assert owned == 0


async def test_a_partition_created_later_is_append_only_for_the_app(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.plain_database_url)
    transaction = conn.transaction()
    await transaction.start()
    try:
        # As `awfdrs retention` creates the coming months, as the owner; rolled back after.
        await conn.execute(
            "CREATE TABLE events_p2100_01 PARTITION OF events "
            "FOR VALUES FROM ('2100-01-01') TO ('2100-02-01')"
        )
        granted = {
            privilege: await conn.fetchval(
                "SELECT has_table_privilege($1, 'events_p2100_01', $2)", APP_ROLE, privilege
            )
            for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", *NEVER)
        }
    finally:
        await transaction.rollback()
        await conn.close()
    assert granted == {
        "SELECT": True,
        "INSERT": True,
        "UPDATE": False,
        "DELETE": False,
        **dict.fromkeys(NEVER, False),
    }


async def test_the_owner_or_a_superuser_is_never_made_the_app_login(settings: Settings) -> None:
    with pytest.raises(AppLoginError, match="the owner that migrates"):
        await ensure_app_login(
            owner_url=settings.plain_database_url, app_url=settings.plain_database_url
        )


async def _wait_for(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], ready: Any
) -> dict[str, Any]:
    for _ in range(300):
        body: dict[str, Any] = (await http.get(path, headers=headers)).json()
        if ready(body):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never became ready: {body}")


async def test_intake_dispatch_and_a_whole_incident_run_as_the_app_role(
    isolated_settings: Settings, app_login: tuple[str, str], temporal_client: Client
) -> None:
    settings = isolated_settings.model_copy(
        update={
            "database_url": as_role(isolated_settings.plain_database_url, *app_login),
            "task_queue": f"least-privilege-{uuid.uuid4().hex}",
            "dispatcher_poll_interval_s": 0.2,
        }
    )
    app = create_app(settings, temporal=temporal_client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        activity_set(settings) as activities,
        build_worker(temporal_client, activities, settings.task_queue),
        CallbackServer([Reply(200)]) as callback,
    ):
        async with app.state.engine.connect() as connection:
            assert (await connection.execute(text("SELECT current_user"))).scalar() == app_login[0]
        await _run_incident(http, callback.url)
    owner = await asyncpg.connect(isolated_settings.plain_database_url)
    try:
        assert await owner.fetchval("SELECT count(*) FROM event_outbox") == 0
    finally:
        await owner.close()


async def _run_incident(http: httpx.AsyncClient, callback_url: str) -> None:
    """Every write path of a resolved incident, through the API and the worker."""
    created = await http.post(
        "/api/v1/tenants",
        json={"name": uuid.uuid4().hex[:12]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['api_key']}"}
    registered = await http.post(
        "/api/v1/workflows",
        headers=headers,
        json={"name": "billing-sync", "callback_url": callback_url},
    )
    assert registered.status_code == 201, registered.text
    sent = await http.post("/api/v1/events", json=failure_event(), headers=headers)
    assert sent.status_code == 202, sent.text
    page = await _wait_for(
        http,
        "/api/v1/incidents",
        headers,
        lambda body: any(i["status"] == "resolved" for i in body["items"]),
    )
    incident = page["items"][0]["id"]
    for path in (f"/incidents/{incident}", f"/incidents/{incident}/timeline", "/events"):
        assert (await http.get(f"/api/v1{path}", headers=headers)).status_code == 200
    actions = (await http.get("/api/v1/actions", headers=headers)).json()
    assert [a["status"] for a in actions["items"]] == ["succeeded"]
    switch = await http.post(
        "/api/v1/kill-switches",
        json={"workflow": "billing-sync", "reason": "least privilege"},
        headers=headers,
    )
    assert switch.status_code == 201, switch.text
    off = await http.delete(f"/api/v1/kill-switches/{switch.json()['id']}", headers=headers)
    assert off.status_code == 200, off.text
