"""`awfdrs up` keeps an AWFDRS_SECRET_KEY in its data dir, like the admin token."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

from devstack.stack import secret_key
from models.secret_box import parse_key


def test_the_first_start_generates_a_private_key_and_later_starts_reuse_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = secret_key(data_dir, {})
    assert len(base64.b64decode(key)) == 32
    parse_key(key)  # what the API, the worker and the migration accept
    path = data_dir / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert secret_key(data_dir, {}) == key


def test_a_key_from_the_environment_wins_and_is_not_written(tmp_path: Path) -> None:
    given = base64.b64encode(bytes(range(32))).decode()
    assert secret_key(tmp_path, {"AWFDRS_SECRET_KEY": given}) == given
    assert not (tmp_path / "secret_key").exists()
