"""`GET /metrics`: Prometheus text exposition of the API process."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.dispatcher import OutboxDispatcher
from api.metrics import ApiMetrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    operation_id="getMetrics",
    include_in_schema=True,
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics; the outbox gauges are read fresh from PostgreSQL."""
    registry: ApiMetrics = request.app.state.metrics
    dispatcher: OutboxDispatcher = request.app.state.dispatcher
    with contextlib.suppress(Exception):  # a scrape must not fail because PostgreSQL is down
        depth = await dispatcher.outbox_depth()
        registry.outbox_depth.set(depth["depth"])
        registry.outbox_age.set(depth["oldest_age_s"])
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
