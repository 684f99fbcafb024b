"""`awfdrs maintenance add|list|end` as a subprocess against a real API process."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.maintenance_cli import duration_s
from settings import Settings
from tests.api.served import served_api
from tests.conftest import TenantCredentials

CLI = Path(__file__).resolve().parent.parent / "cli.py"


@pytest.fixture(scope="module")
def api_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m api` on the session's servers, reached over a socket as the CLI does."""
    with served_api(settings, tmp_path_factory.mktemp("maintenance") / "api.log") as served:
        yield served.url


async def awfdrs(api_url: str, tenant: TenantCredentials, *args: str) -> str:
    """Run this checkout's `cli.py` with the tenant's key; return stdout, failing on an error."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWFDRS_")}
    env |= {
        "AWFDRS_API_URL": api_url,
        "AWFDRS_API_KEY": tenant.api_key,
        "AWFDRS_CLI_CONFIG": "/nonexistent/awfdrs-cli.json",
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(CLI), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).parent,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_add_list_and_end_a_weekly_window(api_url: str, tenant: TenantCredentials) -> None:
    added = json.loads(
        await awfdrs(
            api_url,
            tenant,
            "maintenance",
            "add",
            "--workflow=billing-*",
            "--starts-at=2030-01-06T02:00:00Z",
            "--duration=2h",
            "--recurrence=FREQ=WEEKLY;BYDAY=SU",
            "--mode=hold",
            "--reason=db upgrade",
            "--json",
        )
    )
    assert (added["duration_s"], added["mode"], added["active_now"]) == (7200, "hold", False)
    assert added["next_occurrence"]["starts_at"] == "2030-01-06T02:00:00Z"
    table = await awfdrs(api_url, tenant, "maintenance", "list")
    assert (
        added["id"] in table and "workflow=billing-*" in table and "2030-01-06T04:00:00Z" in table
    )
    ended = json.loads(await awfdrs(api_url, tenant, "maintenance", "end", added["id"], "--json"))
    assert ended["ended_at"] and ended["ended_by"]
    assert (await awfdrs(api_url, tenant, "maintenance", "list")).strip() == "(none)"
    assert added["id"] in await awfdrs(api_url, tenant, "maintenance", "list", "--all")


def test_durations_take_units() -> None:
    assert [duration_s(t) for t in ("90", "90s", "30m", "2h", "1d")] == [90, 90, 1800, 7200, 86400]
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        duration_s("2 weeks")
