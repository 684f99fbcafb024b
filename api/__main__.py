"""Serve the API with uvicorn (`python -m api`), configured from `Settings`."""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE, LifespanType

from api.app import create_app
from api.routes.metrics import metrics_app
from observability import configure_logging
from settings import Settings, load_settings

START_POLL_S = 0.05


def _server(
    app: ASGIApp, settings: Settings, *, port: int, lifespan: LifespanType
) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=port,
        lifespan=lifespan,
        log_config=None,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


async def serve_with_metrics(api: uvicorn.Server, side: uvicorn.Server) -> None:
    """Run the API, then the metrics server once the API's lifespan has filled the state."""
    api_task = asyncio.create_task(api.serve())
    while not api.started and not api_task.done():
        await asyncio.sleep(START_POLL_S)
    side_task = asyncio.create_task(side.serve())
    # Either one ending (a signal, a failed bind) ends both.
    await asyncio.wait({api_task, side_task}, return_when=asyncio.FIRST_COMPLETED)
    api.should_exit = side.should_exit = True
    await asyncio.gather(api_task, side_task)


def main() -> None:
    """Run uvicorn on AWFDRS_API_HOST:AWFDRS_API_PORT (and AWFDRS_METRICS_PORT when set)."""
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    app = create_app(settings)
    api = _server(app, settings, port=settings.api_port, lifespan="on")
    if settings.metrics_port is None:
        api.run()
    else:
        side = _server(metrics_app(app), settings, port=settings.metrics_port, lifespan="off")
        with asyncio.Runner(loop_factory=api.config.get_loop_factory()) as runner:
            runner.run(serve_with_metrics(api, side))
    if not api.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
