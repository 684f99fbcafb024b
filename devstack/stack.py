"""`awfdrs up`: embedded servers, migrations, the demo tenant, then the supervised children."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.banner import DEMO_TENANT, banner, wait_until_ready
from devstack.db_roles import ensure_app_login
from devstack.extra import require_devstack
from devstack.postgres import EmbeddedPostgres, share_with_server_user
from devstack.process import port_in_use, private_dir
from devstack.supervisor import ChildSpec, Supervisor
from devstack.temporal import EmbeddedTemporal
from devstack.up_lock import data_dir_lock
from devstack.valkey import EmbeddedValkey

log = logging.getLogger("awfdrs.up")
# The embedded database's login for the API and the worker: a member of `awfdrs_app`.
APP_LOGIN = "awfdrs_service"


class PortTaken(SystemExit):
    """A port the stack needs is already in use."""


@dataclass(frozen=True)
class UpOptions:
    """Command-line options of `awfdrs up`."""

    data_dir: Path
    api_port: int = 8000
    temporal_port: int = 7233
    ui_port: int = 8233


@dataclass
class Endpoints:
    """Where each server of the running stack listens."""

    database_url: str  # what the API and the worker connect as
    migration_database_url: str  # the owner of the tables, for migrations
    redis_url: str
    temporal_address: str
    ui_url: str
    # Whether `awfdrs up` runs PostgreSQL itself, and so sets up the application's login.
    embedded_database: bool = False


def check_ports(options: UpOptions, env: dict[str, str]) -> None:
    """Fail with the option's name when a port the stack would bind is taken."""
    wanted = [("--api-port", options.api_port)]
    if "AWFDRS_TEMPORAL_ADDRESS" not in env:
        wanted += [("--temporal-port", options.temporal_port), ("--ui-port", options.ui_port)]
    for option, port in wanted:
        if port_in_use(port):
            raise PortTaken(f"awfdrs up: port {port} ({option}) is already in use; pick another")


def _database(stack: ExitStack, options: UpOptions, env: dict[str, str]) -> tuple[str, str]:
    """Return the application's and the owner's database URLs, starting PostgreSQL if needed."""
    if url := env.get("AWFDRS_DATABASE_URL"):
        return url, env.get("AWFDRS_MIGRATION_DATABASE_URL") or url
    share_with_server_user(options.data_dir)
    pg = EmbeddedPostgres(options.data_dir / "postgres")
    stack.callback(pg.stop)
    pg.start()
    return pg.url_for(APP_LOGIN), pg.url


@contextmanager
def embedded_servers(options: UpOptions, env: dict[str, str]) -> Iterator[Endpoints]:
    """Start each server not replaced by an env var; stop them all on exit."""
    with ExitStack() as stack:
        database_url, migration_url = _database(stack, options, env)
        redis_url = env.get("AWFDRS_REDIS_URL")
        if not redis_url:
            valkey = EmbeddedValkey(options.data_dir / "valkey")
            stack.callback(valkey.stop)
            valkey.start()
            redis_url = valkey.url
        temporal_address = env.get("AWFDRS_TEMPORAL_ADDRESS")
        ui_url = env.get("AWFDRS_TEMPORAL_UI_URL", "")
        if not temporal_address:
            temporal = EmbeddedTemporal(
                options.data_dir / "temporal", port=options.temporal_port, ui_port=options.ui_port
            )
            stack.callback(temporal.stop)
            temporal.start()
            temporal_address, ui_url = temporal.address, temporal.ui_url
        yield Endpoints(
            database_url,
            migration_url,
            redis_url,
            temporal_address,
            ui_url or "http://127.0.0.1:8233",
            embedded_database=not env.get("AWFDRS_DATABASE_URL"),
        )


def admin_token(data_dir: Path, env: dict[str, str]) -> str:
    """Return AWFDRS_ADMIN_TOKEN, or the one generated on first start and kept in the data dir."""
    if token := env.get("AWFDRS_ADMIN_TOKEN"):
        return token
    path = data_dir / "admin_token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    _write_secret(path, token)
    return token


def secret_key(data_dir: Path, env: dict[str, str]) -> str:
    """Return AWFDRS_SECRET_KEY, or the key generated on first start and kept in the data dir."""
    if key := env.get("AWFDRS_SECRET_KEY"):
        return key
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = base64.b64encode(os.urandom(32)).decode("ascii")
    _write_secret(path, key)
    return key


def _write_secret(path: Path, value: str) -> None:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


async def ensure_demo_tenant(database_url: str, key_path: Path) -> str:
    """Create the demo tenant once and return an API key for it (kept in the data dir)."""
    from api.services.tenants import create_tenant, get_tenant_by_name, issue_api_key
    from models.db import create_engine, create_session_factory
    from models.secret_box import SecretBox
    from settings import load_settings

    settings = load_settings(database_url=database_url)
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            tenant = await get_tenant_by_name(session=session, name=DEMO_TENANT)
            if tenant is None:
                box = SecretBox.from_settings(settings)
                created = await create_tenant(session=session, box=box, name=DEMO_TENANT)
                key = created.api_key
            elif key_path.exists():
                return key_path.read_text().strip()
            else:
                _, key = await issue_api_key(
                    session=session, tenant_id=tenant.id, scope="operator", name="awfdrs up"
                )
            await session.commit()
    finally:
        await engine.dispose()
    _write_secret(key_path, key)
    return key


def child_env(options: UpOptions, endpoints: Endpoints, token: str) -> dict[str, str]:
    """Return the AWFDRS_* variables every child runs with."""
    return {
        "AWFDRS_ENV": os.environ.get("AWFDRS_ENV", "development"),
        "AWFDRS_DATABASE_URL": endpoints.database_url,
        "AWFDRS_REDIS_URL": endpoints.redis_url,
        "AWFDRS_TEMPORAL_ADDRESS": endpoints.temporal_address,
        "AWFDRS_TEMPORAL_UI_URL": endpoints.ui_url,
        "AWFDRS_ADMIN_TOKEN": token,
        "AWFDRS_API_PORT": str(options.api_port),
        # The outbox dispatcher runs as its own child, so the API's core serves requests.
        "AWFDRS_DISPATCHER": os.environ.get("AWFDRS_DISPATCHER", "process"),
        "PYTHONUNBUFFERED": "1",
    }


def write_endpoints(options: UpOptions, endpoints: Endpoints) -> None:
    """Tell `awfdrs demo` and other tools where the running stack listens."""
    run = private_dir(options.data_dir / "run")
    (run / "endpoints.json").write_text(
        json.dumps(
            {
                "api_url": f"http://127.0.0.1:{options.api_port}",
                "temporal_address": endpoints.temporal_address,
                "ui_url": endpoints.ui_url,
            }
        )
    )


def child_specs(env: dict[str, str]) -> list[ChildSpec]:
    """The worker, the API and (unless AWFDRS_DISPATCHER says otherwise) the dispatcher."""
    python = sys.executable
    specs = [
        ChildSpec("worker", [python, "-m", "worker"], env),
        ChildSpec("api", [python, "-m", "api"], env),
    ]
    if env.get("AWFDRS_DISPATCHER") == "process":
        specs.append(ChildSpec("outbox", [python, "-m", "api.dispatcher_main"], env))
    return specs


async def supervise(options: UpOptions, env: dict[str, str], message: str) -> None:
    """Run the children until SIGINT or SIGTERM; print `message` once the API is ready."""
    supervisor = Supervisor(child_specs(env), run_dir=options.data_dir / "run")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await supervisor.start()
    ready_url = f"http://127.0.0.1:{options.api_port}/api/v1/health/ready"
    if await wait_until_ready(ready_url, stopping=stopping):
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    await stopping.wait()
    log.info("stopping")
    await supervisor.stop()


def prepare_database(endpoints: Endpoints) -> None:
    """Migrate as the owner; on the embedded database, create the application's login too."""
    from models.migrate import upgrade_database
    from settings import load_settings

    owner = load_settings(database_url=endpoints.migration_database_url)
    upgrade_database(owner.async_database_url)
    if endpoints.embedded_database:
        asyncio.run(
            ensure_app_login(owner_url=owner.plain_database_url, app_url=endpoints.database_url)
        )


def up(options: UpOptions) -> None:
    """Bring the whole stack up and keep it running until interrupted."""
    require_devstack("up")
    env = dict(os.environ)
    private_dir(options.data_dir)
    # Before the ports: a second `awfdrs up` on the same data dir is named as such, whichever
    # ports it was given, instead of failing later inside PostgreSQL.
    with data_dir_lock(options.data_dir):
        check_ports(options, env)
        _start_and_supervise(options, env)


def _start_and_supervise(options: UpOptions, env: dict[str, str]) -> None:
    token = admin_token(options.data_dir, env)
    # Before migrating: migration 0006 seals stored secrets with the key it finds in the
    # environment; the demo tenant's creation and the children (who inherit the environment)
    # use the same key after it.
    os.environ["AWFDRS_SECRET_KEY"] = secret_key(options.data_dir, env)
    with embedded_servers(options, env) as endpoints:
        prepare_database(endpoints)
        demo_key = asyncio.run(
            ensure_demo_tenant(endpoints.database_url, options.data_dir / "demo_api_key")
        )
        children = child_env(options, endpoints, token)
        write_endpoints(options, endpoints)
        asyncio.run(supervise(options, children, banner(options, endpoints, token, demo_key)))
    log.info("all stopped")
