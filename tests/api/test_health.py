"""Liveness, readiness against the real servers, and problem+json for every error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from api.app import create_app
from devstack.valkey import EmbeddedValkey
from settings import Settings


async def test_liveness(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_checks_every_dependency(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert {name for name, check in body["checks"].items() if check["ok"]} == {
        "postgresql",
        "redis",
        "temporal",
        "dispatcher",
    }
    assert body["checks"]["dispatcher"]["last_success_age_s"] < 30


async def test_correlation_id_is_echoed_or_minted(http: httpx.AsyncClient) -> None:
    echoed = await http.get("/api/v1/health", headers={"X-Correlation-ID": "req-42"})
    assert echoed.headers["X-Correlation-ID"] == "req-42"
    minted = await http.get("/api/v1/health", headers={"X-Correlation-ID": "bad id\twith space"})
    assert minted.headers["X-Correlation-ID"] not in ("", "bad id\twith space")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/api/v1/nope", 404), ("DELETE", "/api/v1/health", 405)],
)
async def test_errors_are_problem_json_with_correlation_id(
    http: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await http.request(method, path, headers={"X-Correlation-ID": "trace-1"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["correlation_id"] == "trace-1"
    assert body["title"] and body["detail"]


async def test_openapi_is_served(http: httpx.AsyncClient) -> None:
    assert (await http.get("/docs")).status_code == 200
    spec = (await http.get("/openapi.json")).json()
    assert spec["paths"]["/api/v1/health/ready"]["get"]["operationId"] == "getReadiness"


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedValkey]:
    """A Valkey this test may stop and start without disturbing the others."""
    server = EmbeddedValkey(tmp_path / "valkey", durable=False)
    server.start()
    yield server
    server.stop()


async def test_readiness_names_redis_while_it_is_down_and_recovers(
    settings: Settings, temporal_client: Client, own_redis: EmbeddedValkey
) -> None:
    app = create_app(
        settings.model_copy(update={"redis_url": own_redis.url}), temporal=temporal_client
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/api/v1/health/ready")).status_code == 200
            own_redis.stop()
            down = await client.get("/api/v1/health/ready")
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            assert down.json()["down"] == ["redis"]
            assert "redis" in down.json()["detail"]
            own_redis.start()
            assert (await client.get("/api/v1/health/ready")).status_code == 200
