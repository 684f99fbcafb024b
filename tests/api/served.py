"""`python -m api` as a real process on the session's servers, for tests that need sockets."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.process import free_port, port_in_use, spawn, stop, wait_until
from settings import Settings
from tests.conftest import ADMIN_TOKEN


@dataclass(frozen=True)
class ServedApi:
    """A running API process: its URL, port and pid."""

    url: str
    port: int
    pid: int

    def rss_bytes(self) -> int:
        """Return the process's resident set size, read from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for pid {self.pid}")


@contextmanager
def served_api(settings: Settings, log_path: Path, **env: str) -> Iterator[ServedApi]:
    """Run `python -m api` on a free port with `env` (AWFDRS_* values) until the block ends."""
    port = free_port()
    environ = {
        **os.environ,
        "AWFDRS_DATABASE_URL": settings.database_url,
        "AWFDRS_REDIS_URL": settings.redis_url,
        "AWFDRS_TEMPORAL_ADDRESS": settings.temporal_address,
        "AWFDRS_ENV": "development",
        "AWFDRS_ADMIN_TOKEN": ADMIN_TOKEN,
        "AWFDRS_API_PORT": str(port),
        "AWFDRS_LOG_LEVEL": "WARNING",
        "AWFDRS_TASK_QUEUE": "served-no-worker",
        **env,
    }
    proc = spawn([sys.executable, "-m", "api"], log_path=log_path, env=environ)
    try:
        listening = functools.partial(port_in_use, port)
        wait_until(listening, what="python -m api", proc=proc, timeout=60, log_path=log_path)
        yield ServedApi(url=f"http://127.0.0.1:{port}", port=port, pid=proc.pid)
    finally:
        stop(proc)
