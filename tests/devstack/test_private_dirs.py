"""The embedded servers keep their data private: no directory they use is world-readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from devstack.postgres import SYSTEM_USER, server_user
from devstack.process import private_dir
from settings import Settings


def world_readable_dirs(root: Path) -> list[str]:
    """Every directory at or below `root` that others may list (o+r) or write (o+w)."""
    found = []
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]:
        mode = directory.stat().st_mode
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            found.append(f"{directory} {stat.filemode(mode)}")
    return found


def test_the_test_stack_dir_is_private(stack_dir: Path, settings: Settings) -> None:
    assert settings.database_url  # PostgreSQL, Valkey and Temporal have written their data
    assert any(stack_dir.iterdir())
    assert world_readable_dirs(stack_dir) == []


def test_a_new_private_dir_and_its_new_parents_are_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o002)  # a permissive umask must not leak into the modes
    try:
        leaf = private_dir(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old_umask)
    for directory in (tmp_path / "a", tmp_path / "a" / "b", leaf):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_an_existing_data_dir_is_tightened(tmp_path: Path) -> None:
    existing = tmp_path / "data"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    assert stat.S_IMODE(private_dir(existing).stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as a system user only under root")
def test_postgres_runs_with_its_own_group_and_none_of_roots(
    stack_dir: Path, settings: Settings
) -> None:
    assert settings.database_url
    pgdata = stack_dir / "postgres" / "pgdata"
    user = server_user()
    assert user is not None and pgdata.stat().st_uid == user.pw_uid
    pid = (pgdata / "postmaster.pid").read_text().split()[0]
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert status["Uid"].split()[0] == str(user.pw_uid)
    assert status["Gid"].split()[0] == str(user.pw_gid)
    # Root's supplementary groups would open root's group-readable files to the server.
    assert status["Groups"].split() in ([], [str(user.pw_gid)]), SYSTEM_USER
