"""Marks shared by the tests that stop PostgreSQL under a running pipeline."""

from __future__ import annotations

import pytest

# Connections cut while PostgreSQL stops are dropped inside the driver and the pool (asyncpg's
# duplicated socket on its SSL-negotiation path, a transport invalidated mid-handshake) and
# left to the garbage collector: the libraries', not a leak of ours, which the suite would
# otherwise turn into a failure of whichever test the collector runs in.
ABORTED_CONNECT = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function _SelectorTransport.__del__"
    ":pytest.PytestUnraisableExceptionWarning",
)
