"""Schemathesis fuzzes every operation of /openapi.json on a real uvicorn server."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from devstack.process import free_port, spawn, stop
from settings import Settings
from tests.conftest import ADMIN_TOKEN, TenantCredentials


@pytest.fixture(scope="module")
def api_server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API as its own uvicorn process on the session's servers."""
    port = free_port()
    env = {
        **os.environ,
        "AWFDRS_DATABASE_URL": settings.database_url,
        "AWFDRS_REDIS_URL": settings.redis_url,
        "AWFDRS_TEMPORAL_ADDRESS": settings.temporal_address,
        "AWFDRS_ENV": "development",
        "AWFDRS_ADMIN_TOKEN": ADMIN_TOKEN,
        "AWFDRS_API_PORT": str(port),
        "AWFDRS_LOG_LEVEL": "WARNING",
        "AWFDRS_TASK_QUEUE": "fuzz-no-worker",
    }
    log: Path = tmp_path_factory.mktemp("fuzz") / "api.log"
    proc = spawn([sys.executable, "-m", "api"], log_path=log, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            httpx.get(f"{base}/api/v1/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    yield base
    stop(proc)


@pytest.fixture(scope="module")
def api_schema(api_server: str) -> Any:
    """The served OpenAPI document, loaded by schemathesis."""
    return schemathesis.openapi.from_url(f"{api_server}/openapi.json")


def _fuzz(operation: Any, base_url: str, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=8,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url,
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance],
        )

    run()


def test_no_5xx_and_responses_match_the_schema(
    api_schema: Any, api_server: str, tenant: TenantCredentials
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for operation in operations:
        _fuzz(operation, api_server, admin if "/tenants" in operation.path else tenant.headers)
