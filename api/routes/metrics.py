"""`GET /metrics`: Prometheus text exposition of the API process, optionally behind a token."""

from __future__ import annotations

import contextlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import DispatcherDep, EngineDep, MetricsDep, SettingsDep
from api.errors import Unauthorized, install_error_handlers
from api.middleware import CorrelationIdMiddleware
from api.services.gauges import open_incidents_by_status

router = APIRouter(tags=["health"])


async def require_metrics_token(request: Request, settings: SettingsDep) -> None:
    """When AWFDRS_METRICS_TOKEN is set, allow only that bearer token (constant-time)."""
    if settings.metrics_token is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise Unauthorized("/metrics needs 'Authorization: Bearer <AWFDRS_METRICS_TOKEN>'")


MetricsTokenChecked = Annotated[None, Depends(require_metrics_token)]


@router.get(
    "/metrics",
    operation_id="getMetrics",
    include_in_schema=True,
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: {"description": "Token missing"}},
)
async def metrics(
    registry: MetricsDep, dispatcher: DispatcherDep, engine: EngineDep, _: MetricsTokenChecked
) -> Response:
    """Prometheus metrics; the outbox and open-incident gauges are read fresh from PostgreSQL."""
    with contextlib.suppress(Exception):  # a scrape must not fail because PostgreSQL is down
        depth = await dispatcher.outbox_depth()
        registry.outbox_depth.set(depth["depth"])
        registry.outbox_age.set(depth["oldest_age_s"])
        for status, count in (await open_incidents_by_status(engine)).items():
            registry.open_incidents.labels(status).set(count)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)


def metrics_app(api: FastAPI) -> FastAPI:
    """Build the app serving only `/metrics` on AWFDRS_METRICS_PORT, from `api`'s state."""
    side = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    # No lifespan of its own: it reads the clients and registry the API's lifespan made.
    side.state = api.state
    side.add_middleware(CorrelationIdMiddleware)
    install_error_handlers(side)
    side.include_router(router)
    return side
