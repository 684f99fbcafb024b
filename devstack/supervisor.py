"""Runs named child processes, prefixes their output, and restarts crashed ones with backoff."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack.process import die_with_parent, private_dir

log = logging.getLogger("awfdrs.supervisor")
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 30.0
STOP_TIMEOUT_S = 25.0


@dataclass
class ChildSpec:
    """How to run one supervised child."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Child:
    spec: ChildSpec
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    backoff_s: float = 1.0


class Supervisor:
    """Keep every child running until `stop()`; write `run/<name>.pid` for operators."""

    def __init__(
        self, specs: Sequence[ChildSpec], *, run_dir: Path, cwd: Path | None = None
    ) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._run_dir = run_dir
        self._cwd = cwd
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every child and its watchdog."""
        private_dir(self._run_dir)
        for child in self._children:
            await self._spawn(child)
            self._tasks.append(asyncio.create_task(self._watch(child)))

    async def _spawn(self, child: _Child) -> None:
        proc = await asyncio.create_subprocess_exec(
            *child.spec.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, **child.spec.env},
            cwd=self._cwd,
            process_group=0,
            preexec_fn=die_with_parent,
        )
        child.proc = proc
        (self._run_dir / f"{child.spec.name}.pid").write_text(f"{proc.pid}\n")
        log.info("started %s (pid %d)", child.spec.name, proc.pid)

    async def _watch(self, child: _Child) -> None:
        while True:
            assert child.proc is not None
            started = time.monotonic()
            await self._relay(child.spec.name, child.proc)
            code = await child.proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > STABLE_AFTER_S:
                child.backoff_s = 1.0
            child.restarts += 1
            log.warning(
                "%s exited with code %s; restart #%d in %.0fs",
                child.spec.name,
                code,
                child.restarts,
                child.backoff_s,
            )
            try:
                await asyncio.wait_for(self._stopping.wait(), child.backoff_s)
                return
            except TimeoutError:
                pass
            child.backoff_s = min(child.backoff_s * 2, MAX_BACKOFF_S)
            await self._spawn(child)

    @staticmethod
    async def _relay(name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        prefix = f"{name:<6} | ".encode()
        async for line in proc.stdout:
            sys.stdout.buffer.write(prefix + line)
            sys.stdout.buffer.flush()

    async def stop(self) -> None:
        """Stop every child (SIGTERM, then SIGKILL after a grace period)."""
        self._stopping.set()
        await asyncio.gather(*(self._stop_child(child) for child in self._children))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for child in self._children:
            (self._run_dir / f"{child.spec.name}.pid").unlink(missing_ok=True)

    @staticmethod
    async def _stop_child(child: _Child) -> None:
        proc = child.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("%s did not stop in %.0fs; killing it", child.spec.name, STOP_TIMEOUT_S)
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        except ProcessLookupError:
            await proc.wait()
        log.info("stopped %s", child.spec.name)
