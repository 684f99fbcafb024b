"""Serve the API with uvicorn (`python -m api`), configured from `Settings`."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from observability import configure_logging
from settings import load_settings


def main() -> None:
    """Run uvicorn on AWFDRS_API_HOST:AWFDRS_API_PORT."""
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
