"""A workflow's escalation policy through the API: validated, egress-checked, never shown whole."""

from __future__ import annotations

import httpx

from tests.conftest import TenantCredentials

KEY = "K" * 28 + "tail"


def _level(target: dict[str, object]) -> dict[str, object]:
    return {"levels": [{"name": "on-call", "ack_timeout_s": 60, "targets": [target]}]}


async def _register(
    http: httpx.AsyncClient, tenant: TenantCredentials, policy: dict[str, object] | str
) -> httpx.Response:
    return await http.post(
        "/api/v1/workflows",
        headers=tenant.headers,
        json={
            "name": "billing-sync",
            "callback_url": "http://127.0.0.1:9/cb",
            "escalation_policy": policy,
        },
    )


async def test_a_malformed_target_is_a_422_naming_the_field(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    answer = await _register(http, tenant, _level({"type": "pagerduty", "routing_key": "abc"}))
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    locs = [error["loc"] for error in answer.json()["errors"]]
    assert any(loc[:2] == ["body", "escalation_policy"] and "routing_key" in loc for loc in locs)


async def test_a_target_the_egress_guard_refuses_is_a_422_naming_where_it_is(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    policy = _level({"type": "slack", "url": "https://10.1.2.3/services/T/B/x"})
    answer = await _register(http, tenant, policy)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("escalation_policy.levels.0.targets.0: ")


async def test_the_policy_is_shown_masked_and_can_be_replaced_or_removed(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    target: dict[str, object] = {
        "type": "pagerduty",
        "routing_key": KEY,
        "url": "http://127.0.0.1:9/v2/enqueue",
    }
    created = await _register(http, tenant, _level(target))
    assert created.status_code == 201, created.text
    assert KEY not in created.text
    assert created.json()["escalation_policy"]["levels"][0]["targets"][0]["routing_key"] == (
        "••••tail"
    )
    shown = await http.get("/api/v1/escalation-policies/billing-sync", headers=tenant.headers)
    assert shown.status_code == 200 and KEY not in shown.text
    cleared = await http.patch(
        "/api/v1/workflows/billing-sync", headers=tenant.headers, json={"escalation_policy": None}
    )
    assert cleared.status_code == 200 and cleared.json()["escalation_policy"] is None
    gone = await http.get("/api/v1/escalation-policies/billing-sync", headers=tenant.headers)
    assert gone.status_code == 404


async def test_a_tenant_policy_is_stored_masked_listed_and_removed(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    rule = {
        "on": ["resolved"],
        "targets": [{"type": "slack", "url": "http://127.0.0.1:9/T/B/abcd"}],
    }
    policy = {**_level({"type": "webhook", "url": "workflow"}), "notify": [rule]}
    put = await http.put("/api/v1/escalation-policies/tenant", headers=tenant.headers, json=policy)
    assert put.status_code == 200, put.text
    assert put.json()["notify"][0]["targets"][0]["url"] == "••••abcd"
    listed = await http.get("/api/v1/escalation-policies", headers=tenant.headers)
    assert [p["name"] for p in listed.json()] == ["default", "tenant"]
    removed = await http.delete("/api/v1/escalation-policies/tenant", headers=tenant.headers)
    assert removed.status_code == 204
    gone = await http.get("/api/v1/escalation-policies/tenant", headers=tenant.headers)
    assert gone.status_code == 404


async def test_a_workflow_names_a_named_policy_which_cannot_be_removed_while_in_use(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    target: dict[str, object] = {"type": "slack", "url": "http://127.0.0.1:9/T/B/wxyz"}
    path = "/api/v1/escalation-policies/payments"
    put = await http.put(path, headers=tenant.headers, json=_level(target))
    assert put.status_code == 200, put.text
    unknown = await _register(http, tenant, "no-such-policy")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["loc"] == ["body", "escalation_policy"]
    named = await _register(http, tenant, "payments")
    assert named.status_code == 201, named.text
    assert named.json()["escalation_policy"] == "payments"
    listed = await http.get("/api/v1/escalation-policies", headers=tenant.headers)
    assert [(p["name"], p["kind"]) for p in listed.json()] == [
        ("default", "default"),
        ("payments", "named"),
    ]
    in_use = await http.delete(path, headers=tenant.headers)
    assert in_use.status_code == 409 and "billing-sync" in in_use.json()["detail"]
    reserved = await http.put(
        "/api/v1/escalation-policies/default", headers=tenant.headers, json=_level(target)
    )
    assert reserved.status_code == 422
    await http.patch(
        "/api/v1/workflows/billing-sync", headers=tenant.headers, json={"escalation_policy": None}
    )
    assert (await http.delete(path, headers=tenant.headers)).status_code == 204
    audit = await http.get(
        "/api/v1/operator-actions",
        headers=tenant.headers,
        params={"target": "escalation-policy:payments"},
    )
    assert sorted(a["action"] for a in audit.json()) == [
        "escalation_policy.delete",
        "escalation_policy.put",
    ]
    assert "wxyz" not in audit.text  # the policy's shape, never its credentials
