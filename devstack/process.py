"""Child processes that die with their parent and stop gracefully on request."""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sysconfig
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or did not become ready."""


def die_with_parent() -> None:
    # Runs in the child between fork and exec: if `awfdrs up` or pytest is SIGKILLed,
    # the kernel sends SIGTERM to its servers so nothing is left behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path | None = None,
    user: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in its own process group, logging to `log_path` (or discarding output)."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            **run_as(user),
            env=env,
            cwd=cwd,
            process_group=0,
            preexec_fn=die_with_parent,
            # Data the servers write (AOF, SQLite, logs) is theirs alone, like their data dirs.
            umask=0o077,
        )
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]


def run_as(user: str | None) -> dict[str, Any]:
    """Return the Popen arguments that drop to `user`, with its own group and no others."""
    if user is None:
        return {}
    # Switching the uid alone would keep root's groups, and with them access to root's files.
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def stop(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Ask a child to stop, then kill its whole process group if it does not."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        proc.wait(timeout=5)


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents as owner-only (0700); tighten `path` if present."""
    missing = [parent for parent in [path, *path.parents] if not parent.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        # mkdir's mode passes through the umask, which can only take bits away: set it exactly.
        directory.chmod(0o700)
    path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o077)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port the OS reports free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Tell whether something already listens on `host:port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    proc: subprocess.Popen[bytes],
    timeout: float,
    log_path: Path | None = None,
) -> None:
    """Poll `ready` until true; fail early, with the log tail, if the child exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(f"{what} exited with {proc.returncode}{_tail(log_path)}")
        if ready():
            return
        time.sleep(0.1)
    stop(proc)
    raise EmbeddedServerError(f"{what} not ready after {timeout:.0f}s{_tail(log_path)}")


def _tail(log_path: Path | None, lines: int = 20) -> str:
    if not log_path or not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"; last log lines of {log_path}:\n" + "\n".join(text)


def shown_path(path: str | Path) -> str:
    """Return `path` as a command to paste: relative to the working directory when inside it."""
    absolute = Path(path).absolute()
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    # A bare name would be looked up on PATH instead.
    return str(relative) if len(relative.parts) > 1 else f"./{relative}"


def script_path(name: str) -> str:
    """Locate a console script installed beside this interpreter (or on PATH)."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise EmbeddedServerError(f"{name!r} is not installed; run `make install`")
    return found
