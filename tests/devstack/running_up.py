"""A background `awfdrs up` on free ports, as the devstack tests drive it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.process import script_path

BOOT_TIMEOUT_S = 120


@dataclass
class UpProcess:
    """A running `awfdrs up` and everything it printed so far."""

    proc: subprocess.Popen[str]
    data_dir: Path
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)
    pump: threading.Thread = field(default_factory=threading.Thread)

    def wait_for_line(self, pattern: str, timeout: float = BOOT_TIMEOUT_S) -> re.Match[str]:
        """Wait until a printed line matches `pattern`."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := regex.search(line):
                    return match
            assert self.proc.poll() is None, "awfdrs up exited:\n" + "".join(self.lines[-40:])
            time.sleep(0.2)
        raise AssertionError(f"no line matched {pattern!r}:\n" + "".join(self.lines[-40:]))

    def interrupt(self) -> int:
        """Send Ctrl-C and return the exit code."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=90)
        self.pump.join(timeout=10)
        return code


def clean_env() -> dict[str, str]:
    """The test's environment without AWFDRS_* settings, unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWFDRS_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_up(data_dir: Path, ports: dict[str, int]) -> UpProcess:
    """Start `awfdrs up` on `ports` with `data_dir`, collecting what it prints."""
    proc = subprocess.Popen(
        [
            script_path("awfdrs"),
            "up",
            "--data-dir",
            str(data_dir),
            "--api-port",
            str(ports["api"]),
            "--temporal-port",
            str(ports["temporal"]),
            "--ui-port",
            str(ports["ui"]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    up = UpProcess(proc, data_dir, ports)

    def pump() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                up.lines.append(line)

    up.pump = threading.Thread(target=pump, daemon=True)
    up.pump.start()
    return up


def wait_ready(api_port: int) -> None:
    """Wait until the API's readiness check answers 200."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{api_port}/api/v1/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("the API never became ready")
