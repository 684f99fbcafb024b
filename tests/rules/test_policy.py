"""Policy files load into typed models; a bad file fails naming file, key and reason."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

import pytest

from rules.policy import PolicyError, load_policies

SHIPPED = Path(str(files("rules")))


def test_shipped_policies_load_and_cover_the_contract() -> None:
    policies = load_policies()
    codes = policies.error_codes.codes
    assert len(codes) >= 20
    for code in ("VENDOR_TIMEOUT", "VENDOR_UNAVAILABLE", "RATE_LIMITED"):
        assert codes[code].retryable
    for code in ("AUTH_INVALID", "VALIDATION_FAILED"):
        assert not codes[code].retryable
    assert policies.retry.default in policies.retry.policies
    assert policies.escalation.levels
    assert policies.vendors.for_vendor("unknown-vendor") == policies.vendors.defaults


def test_messages_match_catalogue_patterns() -> None:
    catalog = load_policies().error_codes
    assert catalog.match_message("Upstream timed out after 30s") == "VENDOR_TIMEOUT"
    assert catalog.match_message("429 Too Many Requests") == "RATE_LIMITED"
    assert catalog.match_message("all good") is None


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A copy of the shipped policy files to break."""
    for name in ("error_codes.yaml", "retry_policies.yaml", "vendors.yaml", "escalation.yaml"):
        shutil.copy(SHIPPED / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("retry_policies.yaml", "policies: {}\ndefault: nope\n", "default names unknown policy"),
        (
            "retry_policies.yaml",
            "policies:\n  p: {max_attempts: 0, initial_interval_s: 1, "
            "multiplier: 2, max_interval_s: 5}\ndefault: p\n",
            "policies.p.max_attempts",
        ),
        (
            "retry_policies.yaml",
            "policies:\n  p: {max_attempts: 3, initial_interval_s: 1, multiplier: 2, "
            "max_interval_s: 5, open_after: {count: 0, within_s: 60}}\ndefault: p\n",
            "policies.p.open_after.count",
        ),
        (
            "vendors.yaml",
            "defaults:\n  circuit_breaker:\n    failure_rate_threshold: 2\n",
            "defaults.circuit_breaker.failure_rate_threshold",
        ),
        ("escalation.yaml", "levels: []\n", "levels"),
        ("error_codes.yaml", "codes: {}\ndefault_code: X\n", "default_code 'X' is not a listed"),
        ("error_codes.yaml", "codes: [\n", "not valid YAML"),
        ("vendors.yaml", "defaults:\n  surprise: 1\n", "defaults.surprise"),
    ],
)
def test_a_bad_file_names_file_key_and_reason(
    policy_dir: Path, file: str, content: str, expected: str
) -> None:
    (policy_dir / file).write_text(content)
    with pytest.raises(PolicyError) as excinfo:
        load_policies(policy_dir)
    message = str(excinfo.value)
    assert file in message
    assert expected in message


def test_degraded_after_defaults_to_five_incidents_of_two_workflows_within_a_minute() -> None:
    vendors = load_policies().vendors
    for settings in (vendors.defaults, vendors.for_vendor("stripe")):
        after = settings.degraded_after
        assert (after.incidents, after.workflows, after.within_s) == (5, 2, 60)
        # A failed probe of a vendor incident opened by count waits out the breaker's open time.
        assert settings.probe_every_s() == settings.circuit_breaker.open_duration_s


@pytest.mark.parametrize("off", ["off", "false", '"off"'])
def test_degraded_after_off_turns_the_count_trigger_off(policy_dir: Path, off: str) -> None:
    (policy_dir / "vendors.yaml").write_text(
        f"defaults:\n  degraded_after: {off}\n"
        "vendors:\n  acme:\n    degraded_after: {incidents: 3, within_s: 10, probe_every_s: 2}\n"
    )
    vendors = load_policies(policy_dir).vendors
    assert vendors.defaults.degraded_after.incidents == 0
    acme = vendors.for_vendor("acme")
    assert (acme.degraded_after.incidents, acme.degraded_after.within_s) == (3, 10)
    assert acme.probe_every_s() == 2


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("{incidents: -1}", "defaults.degraded_after.incidents"),
        ("{incidents: 5, within_s: 0}", "defaults.degraded_after.within_s"),
        ("{incidents: 5, workflows: 0}", "defaults.degraded_after.workflows"),
        ("{incidents: 5, per: 60}", "defaults.degraded_after.per"),
        ("on", "defaults.degraded_after"),
    ],
)
def test_a_bad_degraded_after_names_its_key(policy_dir: Path, setting: str, expected: str) -> None:
    (policy_dir / "vendors.yaml").write_text(f"defaults:\n  degraded_after: {setting}\n")
    with pytest.raises(PolicyError, match=expected.replace(".", r"\.")):
        load_policies(policy_dir)
