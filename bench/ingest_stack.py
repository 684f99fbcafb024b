"""The servers of bench/ingest.py: API processes, the dispatcher process, the baseline app,
and what each costs in CPU while a scenario runs."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from devstack.process import free_port, spawn, stop

ADMIN = "bench-admin-token-0123456789abcdef"


def serve(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start a uvicorn process and wait until it answers."""
    proc = spawn(argv, log_path=log, env={**os.environ, **env})
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{argv} did not start; see {log}")


def stack_env(urls: dict[str, str], dispatcher: str) -> dict[str, str]:
    """Environment of the API, dispatcher and baseline processes for the given servers."""
    return {
        "AWFDRS_DATABASE_URL": urls["database"],
        "AWFDRS_REDIS_URL": urls["redis"],
        "AWFDRS_TEMPORAL_ADDRESS": urls["temporal"],
        "AWFDRS_ENV": "development",
        "AWFDRS_ADMIN_TOKEN": ADMIN,
        # A throwaway key: the bench's database lives only as long as the run.
        "AWFDRS_SECRET_KEY": base64.b64encode(os.urandom(32)).decode("ascii"),
        "AWFDRS_LOG_LEVEL": "WARNING",
        "AWFDRS_DISPATCHER": dispatcher,
        "BENCH_DATABASE_URL": urls["database"],
        "BENCH_TEMPORAL_ADDRESS": urls["temporal"],
    }


@dataclass
class Stack:
    """Every process the bench started, and where the HTTP ones listen."""

    api_urls: list[str] = field(default_factory=list)
    inline_url: str | None = None  # an API running its own dispatcher, to compare with
    base_url: str = ""
    apis: list[subprocess.Popen[bytes]] = field(default_factory=list)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dispatcher: subprocess.Popen[bytes] | None = None

    def stop_dispatcher(self) -> None:
        """Stop the dispatcher process (the inline scenarios run without it)."""
        if self.dispatcher is not None and self.dispatcher.poll() is None:
            stop(self.dispatcher)

    def stop(self) -> None:
        """Stop every process."""
        for proc in [*self.apis, *self.others]:
            if proc.poll() is None:
                stop(proc)


def start_stack(
    env: dict[str, str], work: Path, *, apis: int, profile: Path | None, inline: bool = False
) -> Stack:
    """Start `apis` API processes, the dispatcher process (process mode), the baseline app,
    and with `inline` one more API running the dispatcher inside it."""
    stack = Stack()
    try:
        if inline:
            port = free_port()
            inline_env = {**env, "AWFDRS_API_PORT": str(port), "AWFDRS_DISPATCHER": "inline"}
            argv = [sys.executable, "-m", "api"]
            stack.others.append(serve(argv, inline_env, port, work / "api-inline.log"))
            stack.inline_url = f"http://127.0.0.1:{port}"
        for number in range(apis):
            port = free_port()
            # Only the first API is profiled: the single-process scenarios run on it.
            wrap = ["-m", "bench.profiled", str(profile), "api"] if profile and not number else []
            argv = [sys.executable, *(wrap or ["-m", "api"])]
            log = work / f"api{number}.log"
            stack.apis.append(serve(argv, {**env, "AWFDRS_API_PORT": str(port)}, port, log))
            stack.api_urls.append(f"http://127.0.0.1:{port}")
        if env["AWFDRS_DISPATCHER"] == "process":
            argv = [sys.executable, "-m", "api.dispatcher_main"]
            log = work / "dispatcher.log"
            stack.dispatcher = spawn(argv, log_path=log, env={**os.environ, **env})
            stack.others.append(stack.dispatcher)
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--port", str(port)]
        stack.others.append(serve([*argv, "--log-level", "warning"], env, port, work / "b.log"))
        stack.base_url = f"http://127.0.0.1:{port}"
    except BaseException:
        stack.stop()
        raise
    return stack


async def setup_tenant(api: str) -> dict[str, str]:
    """Create a tenant with an unbounded ingest rate and register the workflow."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=api) as http:
        tenant = (
            await http.post(
                "/api/v1/tenants",
                headers=admin,
                json={"name": f"bench-{uuid.uuid4().hex[:6]}", "ingest_rate_per_s": 1_000_000},
            )
        ).json()
        headers = {"Authorization": f"Bearer {tenant['api_key']}"}
        await http.post(
            "/api/v1/workflows",
            headers=headers,
            json={"name": "billing-sync", "callback_url": "http://127.0.0.1:9/callback"},
        )
    return headers


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:  # a backend that ended meanwhile
            continue
        total += times.user + times.system
    return total


class CpuMeter:
    """CPU seconds spent by groups of processes between `start()` and `read()`."""

    def __init__(self, groups: dict[str, list[int]], postgres_dir: Path) -> None:
        self._groups = groups
        self._postmaster = int((postgres_dir / "postmaster.pid").read_text().split()[0])
        self._before: dict[str, float] = {}

    def _pids(self) -> dict[str, list[int]]:
        backends = psutil.Process(self._postmaster).children(recursive=True)
        return {**self._groups, "postgres": [self._postmaster, *(p.pid for p in backends)]}

    def start(self) -> None:
        """Note each group's CPU time so far."""
        self._before = {name: _cpu_s(pids) for name, pids in self._pids().items()}

    def read(self) -> dict[str, float]:
        """Return each group's CPU seconds since `start()`, and the load average now."""
        used = {
            f"{name}_cpu_s": round(_cpu_s(pids) - self._before.get(name, 0.0), 2)
            for name, pids in self._pids().items()
        }
        return {**used, "load_average_1m": round(os.getloadavg()[0], 2)}
