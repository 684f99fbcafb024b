"""What `awfdrs up` prints once the API answers its readiness check, and that wait itself."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from devstack.process import script_path, shown_path

if TYPE_CHECKING:
    from devstack.stack import Endpoints, UpOptions

log = logging.getLogger("awfdrs.up")
DEMO_TENANT = "demo"
POLL_S = 0.25
PATIENCE_S = 60.0


async def wait_until_ready(url: str, *, stopping: asyncio.Event) -> bool:
    """Poll `url` until it answers 200 (True), or until `stopping` is set (False)."""
    loop = asyncio.get_running_loop()
    started, warned, last = loop.time(), False, "no answer yet"
    # trust_env=False: a proxy from the environment must not stand between us and loopback.
    async with httpx.AsyncClient(timeout=2, trust_env=False) as http:
        while not stopping.is_set():
            try:
                response = await http.get(url)
                if response.status_code == 200:
                    return True
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            if not warned and loop.time() - started > PATIENCE_S:
                log.warning("API not ready after %.0fs (%s); still waiting", PATIENCE_S, last)
                warned = True
            with suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), POLL_S)
    return False


def data_dir_flag(data_dir: Path) -> str:
    """Return ` --data-dir <dir>` unless `data_dir` is the default `.awfdrs` of this directory."""
    if data_dir.absolute() == (Path.cwd() / ".awfdrs").absolute():
        return ""
    return f" --data-dir {shown_path(data_dir)}"


def path_hint() -> str:
    """Return the command that puts the virtualenv's scripts on PATH, as it can be pasted."""
    bin_dir = shown_path(Path(script_path("awfdrs")).parent)
    if not bin_dir.startswith("/"):
        bin_dir = "$PWD/" + bin_dir.removeprefix("./")
    return f'export PATH="{bin_dir}:$PATH"'


def banner(options: UpOptions, endpoints: Endpoints, token: str, demo_key: str) -> str:
    """Return the text printed once the stack is ready."""
    api = f"http://127.0.0.1:{options.api_port}"
    awfdrs, temporal = shown_path(script_path("awfdrs")), shown_path(script_path("temporal"))
    return "\n".join(
        [
            "",
            "AWFDRS is up",
            f"  API            {api}/api/v1   (OpenAPI: {api}/docs)",
            f"  Temporal UI    {endpoints.ui_url}",
            f"  Temporal       {endpoints.temporal_address}",
            f"  Admin token    {token}",
            f"  Demo API key   {demo_key}   (tenant '{DEMO_TENANT}', scope operator)",
            f"  Data           {options.data_dir}",
            f"  Try            {awfdrs} demo{data_dir_flag(options.data_dir)}"
            f"   (another terminal, in {Path.cwd()})",
            f"  CLIs           {awfdrs}, {temporal} --address {endpoints.temporal_address}",
            f"                 to type them bare: {path_hint()}",
            "  Ctrl-C stops everything.",
            "",
        ]
    )
