"""`awfdrs responders`: store, list and retire the secrets of two-way webhooks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from settings import Settings
from tests.api.served import served_api
from tests.conftest import TenantCredentials
from tests.utils.responders import PD_SECRET, pagerduty_event, post_pagerduty

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m api` on the session's servers, reached over a socket as the CLI does."""
    with served_api(settings, tmp_path_factory.mktemp("responders") / "api.log") as served:
        yield served.url


def _awfdrs(
    api_url: str, tenant: TenantCredentials, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWFDRS_")}
    env |= {
        "AWFDRS_API_URL": api_url,
        "AWFDRS_API_KEY": tenant.api_key,
        "AWFDRS_CLI_CONFIG": "/nonexistent/awfdrs-cli.json",
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", "responders", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


async def _run(api_url: str, tenant: TenantCredentials, *args: str, stdin: str = "") -> str:
    result = await asyncio.to_thread(_awfdrs, api_url, tenant, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_add_list_retire_a_pagerduty_secret(
    api_url: str, http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    added = json.loads(
        await _run(
            api_url, tenant, "add", "pagerduty", "--secret-stdin", "--json", stdin=PD_SECRET + "\n"
        )
    )
    assert added["webhook_url"] == f"{api_url}/api/v1/integrations/pagerduty/webhooks/{tenant.id}"
    assert added["masked"] == "••••0001" and PD_SECRET not in json.dumps(added)
    body = pagerduty_event("incident.resolved", str(uuid.uuid4()))
    accepted = await post_pagerduty(http, tenant.id, body, PD_SECRET)
    listed = await _run(api_url, tenant, "list", "pagerduty")
    await _run(api_url, tenant, "retire", "pagerduty", added["id"])
    refused = await post_pagerduty(http, tenant.id, body, PD_SECRET)
    assert accepted.status_code == 202, accepted.text
    assert added["id"] in listed and "••••0001" in listed and PD_SECRET not in listed
    assert refused.status_code == 401


async def test_pagerduty_needs_its_secret_and_opsgenie_gets_a_generated_token(
    api_url: str, tenant: TenantCredentials
) -> None:
    missing = await asyncio.to_thread(_awfdrs, api_url, tenant, "add", "pagerduty")
    token = await _run(api_url, tenant, "add", "opsgenie")
    assert missing.returncode != 0 and "PagerDuty generates the signing secret" in missing.stderr
    assert "generated_token: " in token
    assert f"/api/v1/integrations/opsgenie/webhooks/{tenant.id}" in token
