"""The API documentation works offline: every asset comes from the API itself."""

from __future__ import annotations

import re

import httpx


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
