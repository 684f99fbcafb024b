"""`/docs`: Swagger UI served from the packaged `swagger-ui-bundle`, never from a CDN.

The API's documentation must work wherever the API runs, air-gapped networks included, so
the page and every asset it loads come from this process.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"
router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    """The interactive API documentation."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="AWFDRS API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI and its assets from this process."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    app.include_router(router)
