"""Settings validation names the offending variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings import SettingsError, load_settings


def test_ai_mode_other_than_mock_fails_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="AWFDRS_AI_MODE: only 'mock' is supported"):
        load_settings(ai_mode="openai")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("database_url", "mysql://db/awfdrs", "AWFDRS_DATABASE_URL: must be a postgresql://"),
        ("redis_url", "http://cache", "AWFDRS_REDIS_URL: must be a redis://"),
        ("temporal_address", "temporal", "AWFDRS_TEMPORAL_ADDRESS: must be host:port"),
        ("temporal_ui_url", "ftp://ui", "AWFDRS_TEMPORAL_UI_URL: must be an http(s) URL"),
        ("admin_token", "short", "AWFDRS_ADMIN_TOKEN: must be at least 24 characters"),
        ("allowed_callback_hosts", "https://x.example/cb", "AWFDRS_ALLOWED_CALLBACK_HOSTS"),
        ("api_port", 70000, "AWFDRS_API_PORT"),
    ],
)
def test_invalid_values_name_their_variable(field: str, value: object, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(**{field: value})


def test_oidc_needs_issuer_audience_and_jwks_url_together() -> None:
    with pytest.raises(SettingsError, match="AWFDRS_OIDC_JWKS_URL: OIDC needs"):
        load_settings(oidc_issuer="https://idp.example")
    with pytest.raises(SettingsError, match="AWFDRS_OIDC_JWKS_URL: must be an http"):
        load_settings(oidc_issuer="i", oidc_audience="a", oidc_jwks_url="file:///jwks")
    complete = load_settings(oidc_issuer="i", oidc_audience="a", oidc_jwks_url="https://i/jwks")
    assert complete.oidc_enabled and not load_settings().oidc_enabled


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(ai_mode="gpt", redis_url="http://x")
    assert "AWFDRS_AI_MODE" in str(excinfo.value)
    assert "AWFDRS_REDIS_URL" in str(excinfo.value)


def test_environment_variables_are_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWFDRS_ALLOWED_CALLBACK_HOSTS", "Hooks.Example.com, api.example.com")
    monkeypatch.setenv("AWFDRS_DATABASE_URL", "postgresql://u:p@db:5432/awfdrs")
    settings = load_settings()
    assert settings.allowed_callback_hosts == ["hooks.example.com", "api.example.com"]
    assert settings.async_database_url == "postgresql+asyncpg://u:p@db:5432/awfdrs"


def test_development_mode_allows_loopback_callbacks_and_production_allows_none() -> None:
    assert load_settings(env="development").allowed_callback_hosts == ["127.0.0.1", "localhost"]
    assert load_settings(env="production").allowed_callback_hosts == []


def test_the_dispatcher_runs_inline_unless_told_otherwise() -> None:
    assert load_settings().dispatcher_mode == "inline"
    assert load_settings(dispatcher_enabled=False).dispatcher_mode == "off"
    separate = load_settings(dispatcher="process", dispatcher_enabled=False)
    assert separate.dispatcher_mode == "process"
    with pytest.raises(SettingsError, match="AWFDRS_DISPATCHER"):
        load_settings(dispatcher="elsewhere")
    with pytest.raises(SettingsError, match="AWFDRS_DISPATCHER_METRICS_ADDRESS: must be host:port"):
        load_settings(dispatcher_metrics_address="9465")


def test_admin_routes_require_a_token() -> None:
    with pytest.raises(SettingsError, match="AWFDRS_ADMIN_TOKEN"):
        load_settings().require_admin_token()


def test_the_web_ui_link_is_off_in_production_and_local_in_development() -> None:
    assert load_settings(env="production").temporal_ui_url is None
    assert load_settings(env="development").temporal_ui_url == "http://127.0.0.1:8233"
    chosen = load_settings(env="production", temporal_ui_url="https://ui.example/")
    assert chosen.temporal_ui_url == "https://ui.example"


def _pem(path: Path) -> Path:
    path.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return path


@pytest.mark.parametrize("given", ["temporal_tls_cert_path", "temporal_tls_key_path"])
def test_mtls_needs_both_certificate_and_key(tmp_path: Path, given: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(**{given: _pem(tmp_path / "one.pem")})
    message = str(excinfo.value)
    assert "AWFDRS_TEMPORAL_TLS_CERT_PATH and AWFDRS_TEMPORAL_TLS_KEY_PATH" in message
    assert "must be set together" in message


@pytest.mark.parametrize(
    "field", ["temporal_tls_ca_path", "temporal_tls_cert_path", "temporal_tls_key_path"]
)
def test_an_unreadable_tls_file_names_its_variable_and_path(tmp_path: Path, field: str) -> None:
    missing = tmp_path / "nowhere.pem"
    files = {
        "temporal_tls_cert_path": _pem(tmp_path / "cert.pem"),
        "temporal_tls_key_path": _pem(tmp_path / "key.pem"),
    }
    with pytest.raises(SettingsError) as excinfo:
        load_settings(**{**files, field: missing})
    assert f"AWFDRS_{field.upper()}: cannot read {missing}: No such file" in str(excinfo.value)
    assert "must be set together" not in str(excinfo.value)


def test_a_tls_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    der = tmp_path / "ca.der"
    der.write_bytes(b"\x30\x82\x01\x0a")
    with pytest.raises(SettingsError, match=f"AWFDRS_TEMPORAL_TLS_CA_PATH: {der} is not a PEM"):
        load_settings(temporal_tls_ca_path=der)


def test_tls_turned_off_while_tls_files_are_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(temporal_tls=False, temporal_tls_ca_path=_pem(tmp_path / "ca.pem"))
    assert "AWFDRS_TEMPORAL_TLS: is false, but AWFDRS_TEMPORAL_TLS_CA_PATH" in str(excinfo.value)


def test_tls_is_implied_by_tls_options_and_the_api_key(tmp_path: Path) -> None:
    assert not load_settings().temporal_tls_enabled
    assert load_settings(temporal_api_key="key").temporal_tls_enabled
    assert load_settings(temporal_tls_ca_path=_pem(tmp_path / "ca.pem")).temporal_tls_enabled
    assert load_settings(temporal_tls_server_name="temporal.internal").temporal_tls_enabled
    # Explicitly off (say, a local TLS-terminating sidecar): the key then travels as given.
    assert not load_settings(temporal_api_key="key", temporal_tls=False).temporal_tls_enabled


def test_the_temporal_api_key_is_secret() -> None:
    settings = load_settings(temporal_api_key="cloud-key-123")
    assert "cloud-key-123" not in repr(settings)


def test_migrations_connect_as_the_owner_when_one_is_configured() -> None:
    app = "postgresql://awfdrs_service:pw@db:5432/awfdrs"
    owner = "postgresql://awfdrs:owner@db:5432/awfdrs"
    assert load_settings(database_url=app).owner_settings().database_url == app
    configured = load_settings(database_url=app, migration_database_url=owner)
    assert configured.owner_settings().database_url == owner
    assert configured.database_url == app
    with pytest.raises(SettingsError, match="AWFDRS_MIGRATION_DATABASE_URL: must be a postgres"):
        load_settings(migration_database_url="mysql://db/awfdrs")
