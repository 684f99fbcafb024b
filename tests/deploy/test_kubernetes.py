"""The kustomize base and production overlay render, validate offline for the Kubernetes
version the README states, and keep the deployment rules (probes, secrets, non-root, grace)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from functools import cache
from typing import Any

import kubernetes_validate
import pytest
import yaml

from api.app import API_PREFIX
from rules.policy import VendorSettings
from tests.deploy.promql import ROOT
from workflows.activity_calls import LOCAL_TIMEOUT, PAGE_TIMEOUT

K8S = ROOT / "deploy" / "k8s"
# The version README.md ("Kubernetes") states; kubernetes-validate ships its schemas.
KUBERNETES_VERSION = "1.34.0"
# Custom resources have no schema in kubernetes-validate: checked by hand below.
CUSTOM_KINDS = frozenset({"ServiceMonitor"})
KUSTOMIZE = shutil.which("kubectl")
TREES = ["base", "overlays/production"]
needs_kustomize = pytest.mark.skipif(
    KUSTOMIZE is None, reason="kubectl (with its built-in kustomize) is not installed"
)


@cache
def _render(tree: str) -> list[dict[str, Any]]:
    assert KUSTOMIZE is not None
    result = subprocess.run(
        [KUSTOMIZE, "kustomize", str(K8S / tree)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _of_kind(tree: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in _render(tree) if doc["kind"] == kind]


def _pod_specs(tree: str) -> dict[str, dict[str, Any]]:
    specs = {}
    for doc in _render(tree):
        if doc["kind"] in {"Deployment", "Job"}:
            specs[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
    return specs


def test_the_readme_states_the_validated_kubernetes_version() -> None:
    minor = KUBERNETES_VERSION.rsplit(".", 1)[0]
    assert f"Kubernetes {minor}" in (ROOT / "README.md").read_text()


@needs_kustomize
@pytest.mark.parametrize("tree", TREES)
def test_every_resource_validates_strictly(tree: str) -> None:
    kinds = set()
    for doc in _render(tree):
        kinds.add(doc["kind"])
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "NetworkPolicy",
        "ConfigMap",
        "ServiceAccount",
        "ServiceMonitor",
    } <= kinds


@needs_kustomize
@pytest.mark.parametrize("tree", TREES)
def test_the_service_monitor_scrapes_both_services_by_port_name(tree: str) -> None:
    (monitor,) = _of_kind(tree, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    scraped = {}
    for service in _of_kind(tree, "Service"):
        if wanted.items() <= service["metadata"]["labels"].items():
            scraped[service["metadata"]["name"]] = {p["name"] for p in service["spec"]["ports"]}
    # The job label is the Service name, which is what the alert rules select.
    assert set(scraped) == {"awfdrs-api", "awfdrs-worker", "awfdrs-dispatcher"}
    assert all(names & ports for names in scraped.values())


@needs_kustomize
@pytest.mark.parametrize("tree", TREES)
def test_api_probes_use_the_health_routes(tree: str) -> None:
    (container,) = _pod_specs(tree)["awfdrs-api"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == f"{API_PREFIX}/health"
    assert container["readinessProbe"]["httpGet"]["path"] == f"{API_PREFIX}/health/ready"


@needs_kustomize
@pytest.mark.parametrize("tree", TREES)
def test_every_pod_runs_as_non_root_with_limits(tree: str) -> None:
    for name, spec in _pod_specs(tree).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), name


_SECRET_NAME = re.compile(r"DATABASE_URL|REDIS_URL|TOKEN|SECRET|PASSWORD|KEY")


@needs_kustomize
@pytest.mark.parametrize("tree", TREES)
def test_secrets_are_referenced_never_written(tree: str) -> None:
    assert not _of_kind(tree, "Secret")
    for config in _of_kind(tree, "ConfigMap"):
        assert not [key for key in config["data"] if _SECRET_NAME.search(key)]
    for name, spec in _pod_specs(tree).items():
        for container in spec["containers"]:
            for variable in container.get("env", []):
                if _SECRET_NAME.search(variable["name"]):
                    assert "secretKeyRef" in variable["valueFrom"], (name, variable["name"])
    migrate = _pod_specs(tree)["awfdrs-migrate"]["containers"][0]
    assert "AWFDRS_MIGRATION_DATABASE_URL" in {v["name"] for v in migrate["env"]}
    for name in ("awfdrs-api", "awfdrs-worker", "awfdrs-dispatcher"):
        env = {v["name"] for v in _pod_specs(tree)[name]["containers"][0]["env"]}
        assert "AWFDRS_MIGRATION_DATABASE_URL" not in env, "only the Job sees the owner"


def _longest_activity() -> timedelta:
    """The callback's start-to-close is call_timeout_s + 10 s (workflows/activity_calls.py)."""
    field = VendorSettings.model_fields["call_timeout_s"]
    (bound,) = [m.le for m in field.metadata if getattr(m, "le", None) is not None]
    return max(LOCAL_TIMEOUT, PAGE_TIMEOUT, timedelta(seconds=bound + 10))


@needs_kustomize
@pytest.mark.parametrize("tree", TREES)
def test_workers_outlive_their_longest_activity_when_stopped(tree: str) -> None:
    grace = _pod_specs(tree)["awfdrs-worker"]["terminationGracePeriodSeconds"]
    assert _longest_activity() == timedelta(seconds=310)
    (config,) = _of_kind(tree, "ConfigMap")
    # The worker itself waits that long for running activities before it cancels them.
    worker_grace = float(config["data"]["AWFDRS_WORKER_SHUTDOWN_GRACE_S"])
    assert grace > worker_grace >= _longest_activity().total_seconds()


@needs_kustomize
def test_production_runs_in_a_restricted_namespace_with_more_replicas() -> None:
    (namespace,) = _of_kind("overlays/production", "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [d for d in _render("overlays/production") if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"awfdrs"}
    (hpa,) = _of_kind("overlays/production", "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 3
    deployments = {
        d["metadata"]["name"]: d["spec"] for d in _of_kind("overlays/production", "Deployment")
    }
    assert "replicas" not in deployments["awfdrs-api"], "the HPA owns the API's replica count"
    assert deployments["awfdrs-worker"]["replicas"] == 3
