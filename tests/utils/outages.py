"""Marks shared by the tests that stop PostgreSQL under a running pipeline."""

from __future__ import annotations

import pytest

# A connection attempt cut short while PostgreSQL stops can leave asyncpg's duplicated socket
# (its SSL-negotiation path) for the garbage collector; that is the library's, not a leak of ours.
ABORTED_CONNECT = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
