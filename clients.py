"""Client factories of the API, the worker and the CLI: PostgreSQL, Redis and Temporal.

Every process builds its clients here, so a connection setting (a timeout, TLS, a credential)
means the same thing wherever it is used.
"""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from models.db import create_engine
from settings import Settings
from tracing import temporal_interceptors
from workflows.converter import DATA_CONVERTER

__all__ = [
    "connect_temporal",
    "create_engine",
    "create_redis",
    "temporal_api_key",
    "temporal_tls",
    "workflow_ui_url",
]


def create_redis(settings: Settings) -> Redis:
    """Create the Redis client with short timeouts so an outage fails fast."""
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=10,
    )


def _pem(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def temporal_tls(settings: Settings) -> TLSConfig | bool:
    """Return the TLS configuration of the Temporal connection, or False for plaintext."""
    if not settings.temporal_tls_enabled:
        return False
    # Unset parts fall back to the SDK's defaults: system roots, no client certificate.
    return TLSConfig(
        server_root_ca_cert=_pem(settings.temporal_tls_ca_path),
        client_cert=_pem(settings.temporal_tls_cert_path),
        client_private_key=_pem(settings.temporal_tls_key_path),
        domain=settings.temporal_tls_server_name,
    )


def temporal_api_key(settings: Settings) -> str | None:
    """Return the Temporal API key (sent as a bearer token), if one is configured."""
    key = settings.temporal_api_key
    return key.get_secret_value() if key is not None else None


async def connect_temporal(
    settings: Settings, *, lazy: bool, runtime: Runtime | None = None
) -> Client:
    """Connect to Temporal with the pydantic converter; `lazy` defers the first dial."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=temporal_api_key(settings),
        # Always explicit, so the settings alone decide (the SDK would guess from the API key).
        tls=temporal_tls(settings),
        data_converter=DATA_CONVERTER,
        lazy=lazy,
        runtime=runtime,
        interceptors=temporal_interceptors(),  # none unless tracing is on (tracing.py)
    )


def workflow_ui_url(ui_base: str | None, namespace: str, workflow_id: str) -> str | None:
    """Return the Temporal Web UI page of a workflow, or None when no UI URL is configured."""
    if ui_base is None:
        return None
    return f"{ui_base}/namespaces/{namespace}/workflows/{workflow_id}"
