"""The alert rules and scrape config pass `promtool`; the dashboards query what Prometheus has."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.promql import (
    DASHBOARDS,
    ROOT,
    RULES,
    dashboard_expressions,
    metric_names,
    rule_expressions,
)

PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`; .ci/run)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_checks_the_scrape_config() -> None:
    result = _promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_and_a_severity() -> None:
    tests = yaml.safe_load((PROMETHEUS / "rules_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
    assert {name for name, _ in rule_expressions()} == tested


def test_metric_names_skip_functions_labels_keywords_and_ranges() -> None:
    expr = (
        'sum by (job, le) (rate(a_total{route=~"/x|y", status="5.."}[5m] offset 1h))'
        " / on (job) group_left (kind) b_seconds > 0.99 and time() - c_ts > 1e3"
        ' unless histogram_quantile(0.9, d_bucket{x="sum(e)"}[$__rate_interval])'
    )
    assert metric_names(expr) == {"a_total", "b_seconds", "c_ts", "d_bucket"}


def test_the_scrape_config_names_the_jobs_the_rules_watch() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"awfdrs-api", "awfdrs-worker", "awfdrs-dispatcher"}
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]


def test_the_dashboard_covers_every_area_and_uses_its_datasource_variable() -> None:
    (path,) = DASHBOARDS.glob("*.json")
    dashboard = json.loads(path.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    read = set().union(*(metric_names(expr) for _, expr in dashboard_expressions()))
    for area in (
        "awfdrs_ingest_events_total",
        "awfdrs_outbox_depth",
        "awfdrs_outbox_oldest_age_seconds",
        "awfdrs_incidents_total",
        "temporal_activity_execution_latency_bucket",
        "awfdrs_gate_answers_total",
        "awfdrs_breaker_transitions_total",
        "awfdrs_actions_total",
        "temporal_worker_task_slots_available",
    ):
        assert area in read, area


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/awfdrs.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = provider["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in mounts
    source = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
