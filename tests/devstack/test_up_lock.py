"""One `awfdrs up` per data dir: the holder is named, and a crashed holder blocks nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack.up_lock import LOCK_NAME, DataDirInUse, data_dir_lock

HOLD = """
import sys, time
from pathlib import Path
from devstack.up_lock import data_dir_lock
with data_dir_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


@contextmanager
def _holder(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the data dir's lock; gone when the block ends."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "held\n"
            yield proc
        finally:
            proc.kill()


def test_a_held_data_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with _holder(tmp_path) as holder:
        with pytest.raises(DataDirInUse) as refused, data_dir_lock(tmp_path):
            pass
        assert str(refused.value) == (
            f"awfdrs up: another awfdrs up (pid {holder.pid}) is using {tmp_path}"
        )


def test_a_crashed_holder_leaves_its_file_but_no_lock(tmp_path: Path) -> None:
    with _holder(tmp_path) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    assert (tmp_path / LOCK_NAME).read_text() == f"{holder.pid}\n"  # the stale file stays

    started = time.monotonic()
    with data_dir_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() != str(holder.pid)
    assert time.monotonic() - started < 1
    with data_dir_lock(tmp_path):  # released on exit, too
        pass
