"""The compose file is coherent and registers the same search attributes as `awfdrs up`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def test_app_services_share_one_configuration() -> None:
    services = _compose()["services"]
    envs = [services[name]["environment"] for name in ("api", "worker", "migrate")]
    assert envs[0] == envs[1] == envs[2]
    assert envs[0]["AWFDRS_TEMPORAL_ADDRESS"] == "temporal:7233"
