"""A newcomer's paths: docs that work offline, and clear answers to the wrong media type."""

from __future__ import annotations

import re

import httpx

from tests.conftest import ADMIN_TOKEN, TenantCredentials


async def test_docs_and_every_asset_they_load_come_from_the_api(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")
    assert page.status_code == 200
    html = page.text
    references = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    references += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)
    assert references, "the page loads nothing?"
    assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", html), "an outside host"
    for reference in references:
        assert reference.startswith("/"), reference
        asset = await http.get(reference)
        assert asset.status_code == 200, reference
        assert asset.content, reference
    assert "/docs/assets/swagger-ui-bundle.js" in references


async def test_redoc_is_not_offered_half_working(http: httpx.AsyncClient) -> None:
    assert (await http.get("/redoc")).status_code == 404


async def test_every_json_route_refuses_a_body_that_is_not_json(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    routes = [
        ("POST", "/api/v1/workflows", tenant.headers),
        ("PATCH", "/api/v1/workflows/billing-sync", tenant.headers),
        ("POST", "/api/v1/kill-switches", tenant.headers),
        ("POST", "/api/v1/tenants", admin),
        ("POST", "/api/v1/events", tenant.headers),
    ]
    for method, path, headers in routes:
        for media in (None, "text/plain", "application/x-www-form-urlencoded"):
            sent = {**headers, **({"Content-Type": media} if media else {})}
            response = await http.request(method, path, content=b'{"name": "x"}', headers=sent)
            assert response.status_code == 415, (method, path, media, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert "application/json" in response.json()["detail"]


async def test_a_bad_inline_retry_policy_is_named_once_without_union_noise(
    http: httpx.AsyncClient, tenant: TenantCredentials
) -> None:
    body = {
        "name": "billing-sync",
        "callback_url": "http://127.0.0.1:9/callback",
        "retry_policy": {
            "max_attempts": 0,
            "initial_interval_s": 1,
            "multiplier": 1,
            "max_interval_s": 1,
        },
    }
    response = await http.post("/api/v1/workflows", json=body, headers=tenant.headers)
    assert response.status_code == 422
    problem = response.json()
    assert problem["detail"] == (
        "body.retry_policy.inline.max_attempts: Input should be greater than or equal to 1"
    )
    assert len(problem["errors"]) == 1
    named = await http.post(
        "/api/v1/workflows", json={**body, "retry_policy": 7}, headers=tenant.headers
    )
    assert named.json()["detail"] == "body.retry_policy.name: Input should be a valid string"
