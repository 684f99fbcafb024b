"""What readiness and the metrics report about the dispatcher, and the supervisor restarting it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("awfdrs.dispatcher")


@dataclass
class DispatcherHealth:
    """Is the dispatcher completing passes, and if not, why not."""

    enabled: bool = True
    last_success_at: float | None = None  # monotonic
    last_error: str | None = None
    last_error_kind: str | None = None  # what readiness shows: `pass`, `temporal` or `crash`
    failing: bool = False
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def success_age_s(self) -> float:
        """Seconds since the last complete pass (since start when there was none)."""
        return time.monotonic() - (self.last_success_at or self.started_at)

    def record_success(self) -> None:
        """Note a complete pass."""
        self.failing, self.last_success_at = False, time.monotonic()

    def record_failure(self, kind: str, exc: BaseException) -> None:
        """Note a failed pass, an unreachable Temporal or a crash, with its cause."""
        self.failing = True
        self.last_error = f"{kind}: {type(exc).__name__}: {exc}"[:300]
        self.last_error_kind = kind


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    on_restart: Callable[[], None] | None = None,
    backoff_s: float = 1.0,
) -> None:
    """Run `run()` forever: restart it (after a pause) whenever it ends or raises."""
    while True:
        try:
            await run()
            log.error("%s ended unexpectedly; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception:  # a supervisor outlives its task
            log.exception("%s crashed; restarting in %.1fs", name, backoff_s)
        if on_restart is not None:
            on_restart()
        await asyncio.sleep(backoff_s)
