"""Live progress lines for `awfdrs demo` and the benchmarks, drawn only on a terminal.

Piped or redirected (tests, CI, `> file`), or with `NO_COLOR`/`TERM=dumb`, every call here does
nothing, so what a script reads on that stream is unchanged.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from devstack.cli_render import wants_rich


class Bar:
    """One line of a progress display; without a terminal, a no-op."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None) -> None:
        self._progress, self._task = progress, task

    @property
    def drawn(self) -> bool:
        """Whether this line is on a terminal (otherwise updating it does nothing)."""
        return self._progress is not None

    def update(
        self,
        *,
        completed: float | None = None,
        total: float | None = None,
        note: str = "",
        label: str | None = None,
    ) -> None:
        """Set how far the line is (of `total`, if now known), its note and maybe its label."""
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=completed, total=total, note=note, description=label
            )


class Board:
    """Several progress lines drawn together, one per concurrent piece of work."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    def add(self, label: str, total: float | None = None) -> Bar:
        """Add a line; `total=None` shows a pulsing bar until a total is set."""
        if self._progress is None:
            return Bar()
        return Bar(self._progress, self._progress.add_task(label, total=total, note=""))

    def refresh(self) -> None:
        """Draw the lines now rather than at the next tick."""
        if self._progress is not None:
            self._progress.refresh()


@contextmanager
def progress_board(stream: TextIO, *, transient: bool = False) -> Iterator[Board]:
    """Draw progress lines on `stream` while the block runs, if it is a terminal.

    Whatever the block writes to stdout meanwhile is printed above the lines, not through them.
    """
    if not wants_rich(stream):
        yield Board(None)
        return
    progress = Progress(
        SpinnerColumn(finished_text="[green]✓"),
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=Console(file=stream),
        transient=transient,
        # Only the stream drawn on is routed above the lines: a bench's JSON stdout stays apart.
        redirect_stdout=stream is sys.stdout,
        redirect_stderr=stream is sys.stderr,
    )
    with progress:
        yield Board(progress)


async def follow(bar: Bar, read: Callable[[], tuple[float, str]], every_s: float = 0.2) -> None:
    """Refresh `bar` from `read()` (completed, note) until cancelled.

    A timer, not a hook on the measured path: a load loop pays nothing per request for it.
    """
    while True:
        completed, note = read()
        bar.update(completed=completed, note=note)
        await asyncio.sleep(every_s)


@asynccontextmanager
async def following(bar: Bar, read: Callable[[], tuple[float, str]]) -> AsyncIterator[None]:
    """Run `follow` in the background for the duration of the block, if the bar is drawn."""
    if not bar.drawn:
        yield
        return
    task = asyncio.create_task(follow(bar, read))
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        completed, note = read()
        bar.update(completed=completed, note=note)
