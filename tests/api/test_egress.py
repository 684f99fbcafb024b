"""Registration runs the egress guard (422 naming the field and the address class), and admins
manage each tenant's own allow-list."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from api.deps import get_egress_guard
from models.egress import StoredEgressLists
from tests.conftest import ADMIN_TOKEN, TenantCredentials
from tests.utils.builders import register_workflow
from tests.utils.egress import REFUSED, ScriptedResolver, make_guard, resolving_name, table_resolver

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
IDS = [host for host, _, _ in REFUSED]
PARTNER = "svc.partner.example"


@pytest.fixture
def resolver(app: FastAPI) -> Iterator[ScriptedResolver]:
    """The app's guard with no internal network allowed and a scripted resolver."""
    resolver = table_resolver()
    resolver.answers[PARTNER] = [["10.20.1.5"]]
    resolver.answers[f"public.{PARTNER}"] = [["93.184.216.34"]]
    guard = make_guard(resolver, tenant_lists=StoredEgressLists(app.state.engine, ttl_s=0))
    app.dependency_overrides[get_egress_guard] = lambda: guard
    yield resolver
    del app.dependency_overrides[get_egress_guard]


async def _register(
    http: httpx.AsyncClient, tenant: TenantCredentials, **urls: str
) -> httpx.Response:
    body = {"name": "billing-sync", "callback_url": "https://public.egress.test/cb", **urls}
    return await http.post("/api/v1/workflows", json=body, headers=tenant.headers)


@pytest.mark.parametrize("field", ["callback_url", "escalation_webhook_url"])
@pytest.mark.parametrize("by_name", [False, True], ids=["address", "name"])
@pytest.mark.parametrize(("host", "reason", "answer"), REFUSED, ids=IDS)
async def test_registration_refuses_internal_targets_naming_the_field_and_class(
    *,
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    resolver: ScriptedResolver,
    field: str,
    by_name: bool,
    host: str,
    reason: str,
    answer: str,
) -> None:
    resolver.answers["public.egress.test"] = [["93.184.216.34"]]
    target = resolving_name(IDS.index(host)) if by_name else host
    response = await _register(http, tenant, **{field: f"http://{target}:8080/hook"})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["detail"].startswith(f"{field}: ")
    assert reason.split(" address ")[0] in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", field]


async def test_a_changed_url_is_vetted_too(
    http: httpx.AsyncClient, tenant: TenantCredentials, resolver: ScriptedResolver
) -> None:
    resolver.answers["public.egress.test"] = [["93.184.216.34"]]
    assert (await _register(http, tenant)).status_code == 201
    patched = await http.patch(
        "/api/v1/workflows/billing-sync",
        json={"callback_url": "http://169.254.169.254/latest/meta-data/"},
        headers=tenant.headers,
    )
    assert patched.status_code == 422, patched.text
    assert "link-local address 169.254.169.254" in patched.json()["detail"]


async def test_a_tenants_own_entries_apply_to_it_alone(
    http: httpx.AsyncClient,
    tenant: TenantCredentials,
    resolver: ScriptedResolver,
    app: FastAPI,
) -> None:
    other_tenant = await _other_tenant(http)
    url = f"https://{PARTNER}/hook"
    refused = await _register(http, tenant, callback_url=url)
    assert f"host {PARTNER} is not on the egress allow-list" in refused.json()["detail"]
    await _put(http, tenant, hosts=[PARTNER])
    internal = await _register(http, tenant, callback_url=url)
    assert "private address 10.20.1.5" in internal.json()["detail"]
    await _put(http, tenant, hosts=[PARTNER], networks=["10.20.0.0/16"])
    assert (await _register(http, tenant, callback_url=url)).status_code == 201
    other = await _register(http, other_tenant, callback_url=url)
    assert other.status_code == 422
    assert "not on the egress allow-list" in other.json()["detail"]


async def _other_tenant(http: httpx.AsyncClient) -> TenantCredentials:
    name = f"other-{uuid.uuid4().hex[:8]}"
    created = await http.post("/api/v1/tenants", json={"name": name}, headers=ADMIN)
    assert created.status_code == 201, created.text
    body = created.json()
    return TenantCredentials(id=uuid.UUID(body["id"]), name=name, api_key=body["api_key"])


async def _put(http: httpx.AsyncClient, tenant: TenantCredentials, **lists: list[str]) -> None:
    response = await http.put(f"/api/v1/tenants/{tenant.id}/egress", json=lists, headers=ADMIN)
    assert response.status_code == 200, response.text


async def test_admins_read_and_replace_a_tenants_lists(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    path = f"/api/v1/tenants/{tenant.id}/egress"
    empty = (await http.get(path, headers=ADMIN)).json()
    assert (empty["hosts"], empty["networks"], empty["updated_at"]) == ([], [], None)
    assert "hooks.slack.com" in empty["global_hosts"]
    assert "127.0.0.1" in empty["global_hosts"]  # development's AWFDRS_ALLOWED_CALLBACK_HOSTS
    lists = {"hosts": ["Hooks.Acme.example", "http://*.ops.acme.example:8080", "[::1]:9"]}
    put = await http.put(path, json={**lists, "networks": ["10.20.0.0/16"]}, headers=ADMIN)
    assert put.status_code == 200, put.text
    stored = (await http.get(path, headers=ADMIN)).json()
    assert stored["hosts"] == ["hooks.acme.example", "http://*.ops.acme.example:8080", "[::1]:9"]
    assert stored["networks"] == ["10.20.0.0/16"]
    assert stored["updated_at"] is not None
    cleared = await http.put(path, json={}, headers=ADMIN)
    assert (cleared.json()["hosts"], cleared.json()["networks"]) == ([], [])


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"hosts": ["https://api.example.com/cb"]}, ["body", "hosts", "0"]),
        ({"hosts": ["ok.example", "*.com"]}, ["body", "hosts", "1"]),
        ({"networks": ["10.0.0.1/8"]}, ["body", "networks", "0"]),
        ({"networks": ["everything"]}, ["body", "networks", "0"]),
        ({"hosts": ["a.example"] * 101}, ["body", "hosts"]),
        ({"hostz": []}, ["body", "hostz"]),
    ],
)
async def test_an_invalid_list_is_a_422_naming_the_entry(
    http: httpx.AsyncClient, tenant: TenantCredentials, body: object, where: list[str]
) -> None:
    response = await http.put(f"/api/v1/tenants/{tenant.id}/egress", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == where


async def test_only_admins_manage_lists_and_only_of_existing_tenants(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    path = f"/api/v1/tenants/{tenant.id}/egress"
    as_tenant = await http.put(path, json={"hosts": ["evil.example"]}, headers=tenant.headers)
    assert as_tenant.status_code == 401
    assert (await http.get(path, headers=tenant.headers)).status_code == 401
    missing = "/api/v1/tenants/00000000-0000-0000-0000-00000000dead/egress"
    assert (await http.put(missing, json={}, headers=ADMIN)).status_code == 404


async def test_development_registration_still_takes_loopback_callbacks(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    # The app's own guard: development allows 127.0.0.0/8 and ::1, any port, plain http.
    await register_workflow(http, tenant, callback_url="http://127.0.0.1:8123/cb")
    refused = await http.post(
        "/api/v1/workflows",
        json={"name": "meta", "callback_url": "http://169.254.169.254/latest/meta-data/"},
        headers=tenant.headers,
    )
    assert refused.status_code == 422
    assert "link-local address 169.254.169.254" in refused.json()["detail"]
