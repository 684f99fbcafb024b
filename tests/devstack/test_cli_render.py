"""The operator CLI's output: rich on a terminal, the same data as plain text everywhere else."""

from __future__ import annotations

import io
import re

import pytest

from devstack.cli_render import render, render_plain, wants_rich

COLUMNS = ("id", "status", "vendor")
INCIDENTS = [
    {"id": "3f1c9a2e-0d4b-4e8f-9a51-7c2d1e0b6a11", "status": "waiting", "vendor": "stripe"},
    {"id": "b2", "status": "resolved", "vendor": None},
]
SHOWN = {
    "id": "3f1c9a2e",
    "status": "escalated",
    "live": {"attempts": 3, "gate_reason": None},
    "actions": [{"kind": "callback", "ok": False}],
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def as_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make stdout a colour terminal, as an operator's shell would be.

    Called in the test itself: pytest puts its own stdout back between a fixture and the test.
    """
    monkeypatch.setattr("sys.stdout", Terminal())
    for name in ("NO_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)


def test_a_list_on_a_terminal_is_a_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    as_terminal(monkeypatch)
    drawn = render(INCIDENTS, COLUMNS)
    assert ANSI.search(drawn), "a terminal gets colour"
    lines = ANSI.sub("", drawn).splitlines()
    assert lines[0].split() == ["ID", "STATUS", "VENDOR"]
    assert set(lines[1].strip()) == {"─"}, "the header is ruled off"
    assert lines[2].split() == ["3f1c9a2e-0d4b-4e8f-9a51-7c2d1e0b6a11", "waiting", "stripe"]
    assert lines[3].split() == ["b2", "resolved", "-"]


def test_an_object_on_a_terminal_is_a_key_value_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    as_terminal(monkeypatch)
    lines = ANSI.sub("", render(SHOWN, COLUMNS)).splitlines()
    assert lines[0].startswith("╭─ 3f1c9a2e ") and lines[-1].startswith("╰")
    inside = [line.strip("│ ").split() for line in lines[1:-1]]
    assert inside[:4] == [
        ["id", "3f1c9a2e"],
        ["status", "escalated"],
        ["live", "attempts", "3"],
        ["gate_reason", "-"],
    ]
    assert ["actions", "•", "kind", "callback"] in inside and ["ok", "no"] in inside


@pytest.mark.parametrize(
    ("env", "plain"), [({"NO_COLOR": "1"}, False), ({"TERM": "dumb"}, False), ({}, True)]
)
def test_plain_is_asked_for_by_no_color_dumb_terminals_and_the_flag(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], plain: bool
) -> None:
    as_terminal(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert not wants_rich(plain=plain)
    assert render(INCIDENTS, COLUMNS, plain=plain) == render_plain(INCIDENTS, COLUMNS)


def test_piped_output_is_the_plain_text_scripts_read() -> None:
    assert not wants_rich(io.StringIO())
    assert render(INCIDENTS, COLUMNS).splitlines() == [
        "ID                                    STATUS    VENDOR",
        "3f1c9a2e-0d4b-4e8f-9a51-7c2d1e0b6a11  waiting   stripe",
        "b2                                    resolved  -",
    ]
    assert render(SHOWN, COLUMNS).splitlines() == [
        "id: 3f1c9a2e",
        "status: escalated",
        "live:",
        "  attempts: 3",
        "  gate_reason: -",
        "actions:",
        "  - kind: callback",
        "    ok: no",
    ]
    assert render([], COLUMNS) == "(none)" and render({}, COLUMNS) == "(empty)"
