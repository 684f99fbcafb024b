"""The quick start works as printed: every README command, the banner's and the demo's."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devstack.process import free_port
from tests.devstack.running_up import UpProcess, clean_env, start_up

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
QUICK_START = (
    "The two commands",
    "Send an event yourself",
    "Follow it in the Web UI",
    "Pause, resume, kill from the CLI",
)
# `make up` is the stack this test starts itself; `make test` is the suite this test is part of.
NOT_RUN = re.compile(r"^(make |open |xdg-open )")
PLACEHOLDER = re.compile(r"<[a-z][a-z ]*>|…")
ASSIGNMENT = re.compile(r"^[A-Z_]+=")


def bash_blocks(markdown: str, heading: str) -> list[str]:
    """Return the ```bash blocks of the section `heading`, up to the next heading."""
    blocks: list[str] = []
    body: list[str] = []
    in_section, fence = False, None
    for line in markdown.splitlines():
        if fence is None and line.startswith("#"):  # a heading (a `#` in code is a comment)
            in_section = re.sub(r"^#+ ", "", line) == heading
        elif fence is None and line.startswith("```"):
            fence, body = line[3:].strip(), []
        elif fence is not None and line.startswith("```"):
            if in_section and fence == "bash":
                blocks.append("\n".join(body))
            fence = None
        elif fence is not None:
            body.append(line)
    return blocks


def commands(block: str) -> list[str]:
    """Split a block into whole commands: continuation lines and multi-line quotes joined."""
    found, pending = [], ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote is still open
            continue
        if pending.endswith("\\"):
            continue
        if words:
            found.append(pending)
        pending = ""
    assert not pending, f"unterminated command: {pending}"
    return found


@dataclass
class Session:
    """One terminal at the repository root: its variables and what it learned so far."""

    up: UpProcess
    key: str
    assignments: list[str] = field(default_factory=list)
    incident_key: str | None = None

    def fill(self, command: str) -> str:
        """Point the command at this stack, placeholders filled in as a reader would."""
        ports = self.up.ports
        filled = (
            command.replace("localhost:8000", f"localhost:{ports['api']}")
            .replace("127.0.0.1:8000", f"127.0.0.1:{ports['api']}")
            .replace("127.0.0.1:7233", f"127.0.0.1:{ports['temporal']}")
            .replace("127.0.0.1:8233", f"127.0.0.1:{ports['ui']}")
            .replace(".awfdrs/", f"{self.up.data_dir}/")
        )
        if self.incident_key:
            filled = filled.replace("incident:<tenant>:<signature>", self.incident_key)
        leftover = PLACEHOLDER.findall(re.sub(r"#.*", "", filled))
        assert not leftover, f"unfilled placeholder {leftover} in: {command}"
        return filled

    def run(self, command: str, *, as_printed: bool = False) -> str:
        """Run the command with `bash -c` after the variables set so far; it must exit 0.

        `as_printed`: exactly as the banner or the demo printed it, with no placeholder to
        fill and no API settings in the environment: it must find the stack on its own.
        """
        line = command if as_printed else self.fill(command)
        env = clean_env()
        if not as_printed:
            env |= {
                "AWFDRS_API_URL": f"http://127.0.0.1:{self.up.ports['api']}",
                "AWFDRS_API_KEY": self.key,
            }
        env["AWFDRS_CLI_CONFIG"] = "/nonexistent/awfdrs-cli.json"
        result = subprocess.run(
            ["bash", "-c", "\n".join([*self.assignments, line])],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert result.returncode == 0, f"{line}\n→ {result.returncode}: {result.stderr}"
        if ASSIGNMENT.match(command):
            self.assignments.append(line)
        self._learn(result.stdout)
        return result.stdout

    def _learn(self, stdout: str) -> None:
        try:
            answer = json.loads(stdout)
        except ValueError:
            return
        if isinstance(answer, dict) and answer.get("incident_key") and not self.incident_key:
            self.incident_key = str(answer["incident_key"])


def _wait_until_listed(session: Session) -> None:
    """The incident the README's event opened is recorded (a reader takes longer than this)."""
    url = f"http://127.0.0.1:{session.up.ports['api']}/api/v1/incidents/{session.incident_key}"
    headers = {"Authorization": f"Bearer {session.key}"}
    deadline = time.monotonic() + 60
    while httpx.get(url, headers=headers).status_code != 200:
        assert time.monotonic() < deadline, f"{session.incident_key} was never recorded"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """`awfdrs up` in the background on free ports, banner printed."""
    ports = {"api": free_port(), "temporal": free_port(), "ui": free_port()}
    up = start_up(tmp_path_factory.mktemp("readme") / "awfdrs-data", ports)
    try:
        key = up.wait_for_line(r"Demo API key\s+(awf_\S+)").group(1)
        up.wait_for_line(r"Ctrl-C stops everything")
        yield Session(up, key)
    finally:
        assert up.interrupt() == 0, "".join(up.lines[-30:])


def test_every_quick_start_command_of_the_readme_exits_0(session: Session) -> None:
    readme = (ROOT / "README.md").read_text()
    ran = []
    for heading in QUICK_START:
        blocks = bash_blocks(readme, heading)
        assert blocks, f"no bash block under {heading!r}"
        if heading == "Pause, resume, kill from the CLI":
            _wait_until_listed(session)
        for command in (c for block in blocks for c in commands(block)):
            if not NOT_RUN.match(command):
                session.run(command)
                ran.append(command)
    assert session.incident_key, "no command answered an incident_key"
    assert any("events/batch" in c for c in ran) and any("--name kill" in c for c in ran)


def test_the_banner_and_the_demo_print_commands_that_run_as_pasted(session: Session) -> None:
    banner = "".join(session.up.lines)
    assert 'to type them bare: export PATH="$PWD/.venv/bin:$PATH"' in banner
    demo = re.search(r"Try\s+(.+?)\s{3}\(another terminal, in (\S+)\)", banner)
    assert demo and demo.group(2) == str(ROOT), banner
    assert demo.group(1).startswith(".venv/bin/awfdrs demo --data-dir ")

    printed = session.run(demo.group(1), as_printed=True)
    hints = re.findall(r"^\s+(?:acknowledge|or): (.+)$", printed, re.M)
    assert [h.split()[0] for h in hints] == [".venv/bin/temporal", ".venv/bin/awfdrs"], printed
    for hint in hints:
        session.run(hint, as_printed=True)
    listing = ".venv/bin/awfdrs incidents list --workflow demo-payments --json --data-dir "
    deadline = time.monotonic() + 30
    while True:
        listed = json.loads(session.run(listing + str(session.up.data_dir), as_printed=True))
        if [item["status"] for item in listed] == ["acknowledged"]:
            return
        assert time.monotonic() < deadline, f"the demo's escalation stays unacknowledged: {listed}"
        time.sleep(0.5)
