"""One `awfdrs up` per data dir: an advisory lock file that names the process holding it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = "up.lock"


class DataDirInUse(SystemExit):
    """Another `awfdrs up` holds the data dir."""


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold `<data dir>/up.lock` for the block; refuse, naming the holder's pid, if taken."""
    # flock, not the file's existence: the kernel drops the lock when its holder dies, so a
    # crashed run leaves a file behind but never a lock that blocks the next start.
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirInUse(
            f"awfdrs up: another awfdrs up (pid {holder}) is using {data_dir}"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor releases the lock
