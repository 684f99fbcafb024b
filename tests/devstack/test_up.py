"""`awfdrs up` end to end: ready stack, Web UI, supervised restarts, clean stop, reused data."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from devstack.process import free_port, port_in_use, script_path
from tests.devstack.running_up import clean_env, start_up, wait_ready
from tests.devstack.test_private_dirs import world_readable_dirs

pytestmark = pytest.mark.slow
# The demo's progress line while the gate holds demo-payments back: cause, then how long.
FORCED_OPEN_WAIT = re.compile(
    r"^  demo-payments\s+waiting: stripe circuit forced open by an operator, .*\d+ s$", re.M
)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid_dir.name}: {cmdline}")
    return found


def _wait_new_pid(pid_file: Path, old: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text and int(text) != old and Path(f"/proc/{text}").exists():
            return int(text)
        time.sleep(0.2)
    raise AssertionError("the supervisor did not restart the child")


def _awfdrs(data_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [script_path("awfdrs"), *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _app_database_users(data_dir: Path) -> set[str]:
    """Who the API and the worker are connected to the embedded database as."""
    port = (data_dir / "postgres" / "pgdata" / "postmaster.pid").read_text().splitlines()[3]

    async def users() -> set[str]:
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/awfdrs")
        try:
            rows = await conn.fetch(
                "SELECT DISTINCT usename FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        return {row["usename"] for row in rows}

    return asyncio.run(users())


def _operator_cli_round_trip(data_dir: Path) -> None:
    """The operator commands against the running stack, as subprocesses."""
    sent = json.loads(
        _awfdrs(
            data_dir,
            "events",
            "send",
            "--workflow",
            "demo-orders",
            "--step",
            "cli-step",
            "--code",
            "VENDOR_TIMEOUT",
            "--json",
        )
    )
    assert sent["status"] == "accepted"
    table = _awfdrs(data_dir, "incidents", "list", "--workflow", "demo-orders")
    assert table.splitlines()[0].split()[:3] == ["ID", "STATUS", "SEVERITY"]
    incidents = json.loads(_awfdrs(data_dir, "incidents", "list", "--json"))
    assert any(i["source_workflow"] == "demo-orders" for i in incidents)
    escalated = next(i for i in incidents if i["status"] == "escalated")
    shown = json.loads(_awfdrs(data_dir, "incidents", "show", escalated["id"], "--json"))
    assert shown["id"] == escalated["id"]
    timeline = _awfdrs(data_dir, "incidents", "timeline", escalated["id"])
    assert "decision" in timeline
    killed = json.loads(
        _awfdrs(data_dir, "incidents", "kill", escalated["id"], "--reason", "cli test", "--json")
    )
    assert killed["signal"] == "kill"
    switch = json.loads(
        _awfdrs(
            data_dir,
            "kill-switch",
            "on",
            "--workflow",
            "demo-payments",
            "--reason",
            "cli",
            "--json",
        )
    )
    assert "demo-payments" in _awfdrs(data_dir, "kill-switch", "list")
    assert (
        json.loads(_awfdrs(data_dir, "kill-switch", "off", switch["id"], "--json"))["active"]
        is False
    )
    assert "stripe" in _awfdrs(data_dir, "vendors")
    failed = subprocess.run(
        [
            script_path("awfdrs"),
            "incidents",
            "show",
            str(uuid.uuid4()),
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert failed.returncode != 0 and "404" in failed.stderr


def _demo_with_a_gate_wait(data_dir: Path, *, api_port: int, key: str) -> str:
    """Run `awfdrs demo` with the stripe circuit held open until the demo reports the wait."""
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{api_port}/api/v1", headers={"Authorization": f"Bearer {key}"}
    )
    assert api.post("/vendors/stripe/circuit/open").status_code == 200
    printed = []
    with subprocess.Popen(
        [script_path("awfdrs"), "demo", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    ) as demo:
        assert demo.stdout is not None
        for line in demo.stdout:
            printed.append(line)
            if FORCED_OPEN_WAIT.search(line):
                assert api.post("/vendors/stripe/circuit/reset").status_code == 200
        assert demo.wait(timeout=120) == 0, "".join(printed)
    api.close()
    output = "".join(printed)
    assert FORCED_OPEN_WAIT.search(output), output
    return output


def _second_up_is_refused(data_dir: Path, *, holder: int) -> None:
    """Another `awfdrs up` on the data dir in use, on other ports, stops in one line."""
    other = [str(free_port()) for _ in range(3)]
    result = subprocess.run(
        [
            script_path("awfdrs"),
            "up",
            "--data-dir",
            str(data_dir),
            *("--api-port", other[0], "--temporal-port", other[1], "--ui-port", other[2]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"awfdrs up: another awfdrs up (pid {holder}) is using {data_dir}"
    ]


@pytest.fixture
def up_ports() -> dict[str, int]:
    """Three free ports for the API, Temporal and its Web UI."""
    return {"api": free_port(), "temporal": free_port(), "ui": free_port()}


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir outside the repository."""
    yield tmp_path / "awfdrs-data"


def test_up_serves_ready_api_and_ui_restarts_worker_and_stops_cleanly(
    data_dir: Path, up_ports: dict[str, int]
) -> None:
    up = start_up(data_dir, up_ports)
    try:
        key = up.wait_for_line(r"Demo API key\s+(awf_\S+)").group(1)
        # The banner comes once readiness passes, so the first request after it succeeds.
        ready = httpx.get(f"http://127.0.0.1:{up_ports['api']}/api/v1/health/ready")
        assert ready.status_code == 200, ready.text
        _second_up_is_refused(data_dir, holder=up.proc.pid)
        assert httpx.get(f"http://127.0.0.1:{up_ports['ui']}/").status_code == 200
        up.wait_for_line(r"^worker \| ")
        up.wait_for_line(r"^api    \| ")
        up.wait_for_line(r"^outbox \| ")  # the dispatcher, in a process of its own

        demo = _demo_with_a_gate_wait(data_dir, api_port=up_ports["api"], key=key)
        assert "demo-orders: resolved after 3 attempt(s)" in demo
        assert "demo-payments: escalated after 3 attempt(s)" in demo
        assert f"http://127.0.0.1:{up_ports['ui']}/namespaces/default/workflows/incident:" in demo

        _operator_cli_round_trip(data_dir)
        assert world_readable_dirs(data_dir) == []
        assert _app_database_users(data_dir) == {"awfdrs_service"}

        pid_file = data_dir / "run" / "worker.pid"
        old_pid = int(pid_file.read_text())
        os.kill(old_pid, signal.SIGKILL)
        _wait_new_pid(pid_file, old_pid)
        up.wait_for_line(r"worker exited with code -9; restart #1")
    finally:
        code = up.interrupt()
    assert code == 0, "".join(up.lines[-30:])
    assert not any(port_in_use(port) for port in up_ports.values())
    assert _processes_mentioning(str(data_dir)) == []

    again = start_up(data_dir, up_ports)
    try:
        assert again.wait_for_line(r"Demo API key\s+(awf_\S+)").group(1) == key
        wait_ready(up_ports["api"])
    finally:
        assert again.interrupt() == 0
    assert _processes_mentioning(str(data_dir)) == []


def test_a_taken_port_is_named_and_up_exits_non_zero(
    data_dir: Path, up_ports: dict[str, int]
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", up_ports["api"]))
        blocker.listen()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli",
                "up",
                "--data-dir",
                str(data_dir),
                "--api-port",
                str(up_ports["api"]),
                "--temporal-port",
                str(up_ports["temporal"]),
                "--ui-port",
                str(up_ports["ui"]),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
    assert result.returncode != 0
    assert f"port {up_ports['api']} (--api-port) is already in use" in result.stderr
