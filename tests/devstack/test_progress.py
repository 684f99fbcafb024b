"""Progress lines: drawn on a terminal, silent on a pipe; the demo's line per incident."""

from __future__ import annotations

import asyncio
import io

import pytest

from devstack.demo import show_progress
from devstack.progress import following, progress_board
from vocabulary import IncidentStatus, Severity
from workflows.incident_state import IncidentView


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def colour_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither NO_COLOR nor a dumb TERM from the environment running the tests."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def view(status: IncidentStatus, attempts: int) -> IncidentView:
    """A demo-orders incident as the `status` query answers it."""
    return IncidentView(
        workflow_id="incident-demo-orders-1",
        incident_id="1",
        status=status,
        severity=Severity.HIGH,
        category="vendor",
        source_workflow="demo-orders",
        step="reserve-stock",
        signature="sig",
        error_code="VENDOR_UNAVAILABLE",
        vendor="inventory-svc",
        event_count=3,
        attempts=attempts,
        max_attempts=4,
        paused=False,
        first_seen_at=None,
        last_seen_at=None,
        next_action="retry" if status == IncidentStatus.WAITING else None,
        next_action_at=None,
        latest_decision=None,
        latest_action=None,
        gate_reason=None,
        escalation_level=0,
        acknowledged_by=None,
        close_reason=None,
        runs=1,
    )


def test_a_pipe_gets_no_progress_at_all() -> None:
    piped = io.StringIO()
    with progress_board(piped) as board:
        bar = board.add("incident")
        show_progress(bar, view(IncidentStatus.WAITING, 1))
    assert not bar.drawn
    assert piped.getvalue() == ""


def test_the_demo_line_follows_attempts_and_fills_once_settled() -> None:
    terminal = Terminal()
    with progress_board(terminal) as board:
        bar = board.add("incident")
        show_progress(bar, view(IncidentStatus.WAITING, 1))
        board.refresh()
        waiting = terminal.getvalue()
        show_progress(bar, view(IncidentStatus.RESOLVED, 3))
    drawn = terminal.getvalue()
    assert "demo-orders" in waiting and "25%" in waiting and "waiting · next: retry" in waiting
    last = drawn.rsplit("demo-orders", 1)[1]
    assert "100%" in last and "resolved" in last and "✓" in drawn


async def test_following_refreshes_a_bar_from_what_it_reads() -> None:
    terminal, sent = Terminal(), [0]
    with progress_board(terminal) as board:
        bar = board.add("load", total=10)
        async with following(bar, lambda: (sent[0], f"{sent[0]} requests")):
            for _ in range(10):
                sent[0] += 1
                await asyncio.sleep(0.03)
    assert "10 requests" in terminal.getvalue() and "100%" in terminal.getvalue()
