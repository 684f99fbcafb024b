"""Settings validation names the offending variable."""

from __future__ import annotations

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


def test_admin_routes_require_a_token() -> None:
    with pytest.raises(SettingsError, match="AWFDRS_ADMIN_TOKEN"):
        load_settings().require_admin_token()
