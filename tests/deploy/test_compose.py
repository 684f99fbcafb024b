"""`docker compose config -q` accepts the compose file with and without `observability`."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.promql import ROOT
from tests.test_deploy import SECRETS


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    return None


COMPOSE = _compose_command()


@pytest.mark.skipif(
    COMPOSE is None, reason="neither docker-compose nor the docker compose plugin is installed"
)
@pytest.mark.parametrize("profile", [[], ["--profile", "observability"]], ids=["default", "obs"])
def test_compose_config_is_valid(profile: list[str]) -> None:
    assert COMPOSE is not None
    env = {"PATH": os.environ["PATH"], **SECRETS}
    result = subprocess.run(
        [*COMPOSE, "-f", str(ROOT / "docker-compose.yml"), *profile, "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_observability_services_are_in_their_profile_and_on_loopback() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
        assert all(str(port).startswith("127.0.0.1:") for port in services[name]["ports"])
    assert services["worker"]["expose"] == ["9464"]
