"""The compose file is coherent, closed (secrets required, loopback ports, least-privilege
application login) and registers the same search attributes as `awfdrs up`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from devstack.temporal import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_every_dependency_names_a_service() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_temporal_schema_comes_from_admin_tools_not_auto_setup() -> None:
    images = [service.get("image", "") for service in _compose()["services"].values()]
    assert any(image.startswith("temporalio/admin-tools:") for image in images)
    assert not any("auto-setup" in image for image in images)


def test_compose_registers_the_search_attributes_of_the_dev_stack() -> None:
    script = (ROOT / "deploy" / "temporal-namespace.sh").read_text()
    line = next(line for line in script.splitlines() if line.startswith("for name in"))
    registered = line.removeprefix("for name in").removesuffix("; do").split()
    assert tuple(registered) == SEARCH_ATTRIBUTES


SECRETS = {
    "AWFDRS_DB_PASSWORD": "owner-secret",
    "AWFDRS_APP_DB_PASSWORD": "app-secret",
    "AWFDRS_ADMIN_TOKEN": "admin-token-0123456789abcdef",
    "AWFDRS_SECRET_KEY": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU=",
}
# Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}.
_REFERENCE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(ValueError):
    """A required variable is unset, as `docker compose config` would report it."""


def _interpolate(text: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise MissingVariable(f"{name}: {arg}")
        if (op == ":-" and not value) or (op == "-" and value is None):
            return str(arg)
        return value or ""

    interpolated = _REFERENCE.sub(substitute, text)
    assert "${" not in interpolated, "a variable reference compose would not understand"
    return interpolated


def _interpolated(node: Any, env: dict[str, str]) -> Any:
    # Like compose: parse first, then interpolate every string value.
    if isinstance(node, dict):
        return {key: _interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolated(value, env) for value in node]
    return _interpolate(node, env) if isinstance(node, str) else node


def _resolved(env: dict[str, str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = _interpolated(_compose(), SECRETS if env is None else env)
    return data


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(secret: str) -> None:
    others = {name: value for name, value in SECRETS.items() if name != secret}
    with pytest.raises(MissingVariable, match=f"^{secret}: set {secret}$"):
        _resolved(others)


def test_no_password_or_token_has_a_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for match in _REFERENCE.finditer(text):
        if match.group("name") and re.search("PASSWORD|TOKEN", match.group("name")):
            assert match.group("op") == ":?", match.group(0)


def test_api_and_worker_connect_as_the_app_login_and_only_migrate_as_the_owner() -> None:
    services = _resolved()["services"]
    api, worker, migrate = (services[name]["environment"] for name in ("api", "worker", "migrate"))
    assert api == worker
    assert {k: v for k, v in migrate.items() if k != "AWFDRS_MIGRATION_DATABASE_URL"} == api
    app_url, owner_url = (
        urlsplit(api["AWFDRS_DATABASE_URL"]),
        urlsplit(migrate["AWFDRS_MIGRATION_DATABASE_URL"]),
    )
    assert (app_url.username, app_url.password) == ("awfdrs_service", "app-secret")
    assert (owner_url.username, owner_url.password) == ("awfdrs", "owner-secret")
    assert not any("owner-secret" in value for value in api.values())
    assert migrate["AWFDRS_MIGRATION_DATABASE_URL"].endswith("@postgres:5432/awfdrs")
    assert services["migrate"]["command"] == ["awfdrs", "migrate", "--ensure-app-login"]
    assert api["AWFDRS_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert api["AWFDRS_TEMPORAL_UI_URL"] == "", "no Web UI links for tenants unless configured"


def test_temporal_and_its_ui_are_published_on_loopback_only() -> None:
    services = _resolved()["services"]
    for name in ("temporal", "temporal-ui"):
        for port in services[name]["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_the_image_copies_every_module_the_wheel_includes() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["only-include"]
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied.update(line.split()[1:-1])
    assert set(included) <= copied
