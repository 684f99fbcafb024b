"""The client factories: Temporal TLS, mTLS and API key really reach the connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import TLSConfig

from clients import connect_temporal, temporal_tls, workflow_ui_url
from settings import Settings
from tests.conftest import make_settings
from tests.utils.tls import SERVER_NAME, Pki, make_pki, tls_proxy


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with a server certificate for SERVER_NAME and a client certificate."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def proxy(pki: Pki, temporal_address: str) -> Iterator[str]:
    """The session's plaintext Temporal behind a proxy that demands mTLS."""
    with tls_proxy(pki, temporal_address) as address:
        yield address


def _mtls(pki: Pki, address: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "temporal_address": address,
        "temporal_tls_ca_path": pki.ca,
        "temporal_tls_cert_path": pki.client_cert,
        "temporal_tls_key_path": pki.client_key,
        "temporal_tls_server_name": SERVER_NAME,
    }
    return make_settings(**{**values, **overrides})


async def _server_version(settings: Settings) -> str:
    client = await connect_temporal(settings, lazy=False)
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    return info.server_version


def test_plaintext_unless_something_asks_for_tls() -> None:
    assert temporal_tls(make_settings()) is False


def test_the_tls_config_carries_the_pem_files_and_the_server_name(pki: Pki) -> None:
    config = temporal_tls(_mtls(pki, "127.0.0.1:7233"))
    assert isinstance(config, TLSConfig)
    assert config.server_root_ca_cert == pki.ca.read_bytes()
    assert config.client_cert == pki.client_cert.read_bytes()
    assert config.client_private_key == pki.client_key.read_bytes()
    assert config.domain == SERVER_NAME


async def test_the_api_key_and_tls_config_reach_client_connect(pki: Pki) -> None:
    settings = _mtls(pki, "127.0.0.1:7233", temporal_api_key="cloud-key-123")
    client = await connect_temporal(settings, lazy=True)
    config = client.service_client.config
    assert config.api_key == "cloud-key-123"
    assert isinstance(config.tls, TLSConfig)
    assert config.tls.client_cert == pki.client_cert.read_bytes()


async def test_mtls_handshake_through_a_proxy_that_demands_a_client_certificate(
    pki: Pki, proxy: str
) -> None:
    assert await _server_version(_mtls(pki, proxy))


async def test_without_the_client_certificate_the_proxy_refuses(pki: Pki, proxy: str) -> None:
    settings = _mtls(pki, proxy, temporal_tls_cert_path=None, temporal_tls_key_path=None)
    with pytest.raises(RuntimeError):
        await _server_version(settings)


async def test_the_server_name_override_is_what_the_certificate_is_checked_against(
    pki: Pki, proxy: str
) -> None:
    # The certificate names SERVER_NAME, not the 127.0.0.1 we dial: without the override,
    # verification must fail.
    with pytest.raises(RuntimeError, match="InvalidCertificate"):
        await _server_version(_mtls(pki, proxy, temporal_tls_server_name=None))


@pytest.mark.parametrize(
    "overrides",
    [{"temporal_tls": True}, {"temporal_api_key": "cloud-key-123"}],
    ids=["tls-on", "api-key-implies-tls"],
)
async def test_tls_to_a_plaintext_server_fails_instead_of_falling_back(
    temporal_address: str, overrides: dict[str, object]
) -> None:
    settings = make_settings(temporal_address=temporal_address, **overrides)
    with pytest.raises(RuntimeError, match="InvalidContentType"):
        await _server_version(settings)


async def test_plaintext_still_reaches_the_plaintext_server(temporal_address: str) -> None:
    assert await _server_version(make_settings(temporal_address=temporal_address))


def test_web_ui_links_exist_only_with_a_configured_ui() -> None:
    assert workflow_ui_url(None, "default", "incident:t:s") is None
    assert (
        workflow_ui_url("https://ui.example", "prod", "incident:t:s")
        == "https://ui.example/namespaces/prod/workflows/incident:t:s"
    )
