"""`awfdrs demo`: a failure scenario against a running stack, with local callback targets."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from clients import connect_temporal, workflow_ui_url
from devstack.banner import data_dir_flag
from devstack.extra import require_devstack
from devstack.http_target import CallbackServer, Reply
from devstack.process import script_path, shown_path
from devstack.progress import Bar, progress_board
from settings import load_settings
from workflows.incident_state import IncidentView
from workflows.incident_workflow import IncidentWorkflow

SETTLED = {"resolved", "escalated", "acknowledged", "killed", "suppressed", "below_threshold"}
QUICK = {
    "max_attempts": 4,
    "initial_interval_s": 1,
    "multiplier": 2,
    "max_interval_s": 4,
    "jitter": 0.1,
}


@dataclass(frozen=True)
class Endpoints:
    """Where the running stack listens (written by `awfdrs up` to run/endpoints.json)."""

    api_url: str
    temporal_address: str
    ui_url: str
    api_key: str
    data_dir: Path

    @classmethod
    def load(cls, data_dir: Path) -> Endpoints:
        """Read the endpoints and the demo key of the stack in `data_dir`."""
        path = data_dir / "run" / "endpoints.json"
        if not path.exists():
            raise SystemExit(
                f"awfdrs demo: no running stack found ({path} is missing); start one with `make up`"
            )
        found = json.loads(path.read_text())
        key = (data_dir / "demo_api_key").read_text().strip()
        return cls(found["api_url"], found["temporal_address"], found["ui_url"], key, data_dir)


def say(line: str) -> None:
    """Print one line of the demo's story."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _register(http: httpx.AsyncClient, name: str, body: dict[str, Any]) -> None:
    response = await http.post("/api/v1/workflows", json={"name": name, **body})
    if response.status_code == 409:
        response = await http.patch(f"/api/v1/workflows/{name}", json=body)
    response.raise_for_status()


async def _send(http: httpx.AsyncClient, workflow: str, step: str, code: str, vendor: str) -> str:
    response = await http.post(
        "/api/v1/events",
        json={
            "idempotency_key": f"demo-{uuid.uuid4().hex}",
            "workflow": workflow,
            "event_type": "step.failed",
            "step": step,
            "vendor": vendor,
            "error": {"code": code, "message": f"{vendor} answered 503", "http_status": 503},
            "payload": {"order": f"ord-{uuid.uuid4().hex[:6]}"},
        },
    )
    response.raise_for_status()
    return str(response.json()["incident_key"])


def gate_wait_line(view: IncidentView) -> str:
    """Return the "waiting: …" line of a safety gate holding the next attempt back."""
    reason = view.gate_reason or ""
    if reason.startswith("waiting:"):  # the workflow already words it: cause and length
        return reason
    line = f"waiting: {view.vendor or view.source_workflow} {reason}"
    if (at := view.next_action_at) is not None:
        left = (at if at.tzinfo else at.replace(tzinfo=UTC)) - datetime.now(UTC)
        line += f", next try in {max(0, round(left.total_seconds()))} s"
    return line


def show_progress(bar: Bar, view: IncidentView) -> None:
    """Move an incident's progress line: attempts out of its cap, full once it settles."""
    settled = view.status in SETTLED
    cap = view.max_attempts or max(1, view.attempts)
    bar.update(
        label=f"{view.source_workflow:<14}",  # aligned like the story lines
        completed=cap if settled else view.attempts,
        total=cap,
        note=f"{view.status}" + (f" · next: {view.next_action}" if view.next_action else ""),
    )


async def _follow(client: Client, key: str, bar: Bar, timeout_s: float = 120) -> IncidentView:
    handle = client.get_workflow_handle(key)
    last = ""
    last_wait: tuple[str | None, datetime | None] = (None, None)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            view = await handle.query(IncidentWorkflow.status)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(0.2)  # accepted, not yet signalled by the outbox dispatcher
            continue
        show_progress(bar, view)
        line = f"{view.status} · attempts {view.attempts} · events {view.event_count}"
        if line != last:
            say(
                f"  {view.source_workflow:<14} {line}"
                + (f" · next: {view.next_action}" if view.next_action else "")
            )
            last = line
        # The same wait is reported once, however long it lasts: a silent pause reads as a hang.
        wait = (view.gate_reason, view.next_action_at)
        if view.status == "waiting" and view.gate_reason and wait != last_wait:
            say(f"  {view.source_workflow:<14} {gate_wait_line(view)}")
        last_wait = wait
        if view.status in SETTLED or asyncio.get_running_loop().time() > deadline:
            return view
        await asyncio.sleep(0.5)


async def run_demo(endpoints: Endpoints) -> None:
    """Register two workflows, fail them, and report what AWFDRS did."""
    require_devstack("demo")  # its hints name the embedded Temporal CLI
    headers = {"Authorization": f"Bearer {endpoints.api_key}"}
    recovering = CallbackServer([Reply(503), Reply(503), Reply(200)])
    broken = CallbackServer([Reply(503)])
    pager = CallbackServer([Reply(202)])
    async with (
        recovering,
        broken,
        pager,
        httpx.AsyncClient(base_url=endpoints.api_url, headers=headers, timeout=10) as http,
    ):
        await _register(
            http, "demo-orders", {"callback_url": recovering.url, "retry_policy": QUICK}
        )
        await _register(
            http,
            "demo-payments",
            {
                "callback_url": broken.url,
                "escalation_webhook_url": pager.url,
                "retry_policy": {**QUICK, "max_attempts": 3},
            },
        )
        # A fresh step name per run gives fresh signatures, hence fresh incidents.
        run = uuid.uuid4().hex[:4]
        say(f"Sending failures (run {run}): 3 × demo-orders, 1 × demo-payments")
        keys = {
            await _send(
                http, "demo-orders", f"reserve-stock-{run}", "VENDOR_UNAVAILABLE", "inventory-svc"
            )
            for _ in range(3)
        }
        keys.add(
            await _send(http, "demo-payments", f"charge-card-{run}", "VENDOR_UNAVAILABLE", "stripe")
        )
        settings = load_settings(temporal_address=endpoints.temporal_address)
        client = await connect_temporal(settings, lazy=False)
        # On a terminal, a live line per incident under the story; piped, the story alone.
        with progress_board(sys.stdout, transient=True) as board:
            views = await asyncio.gather(
                *(_follow(client, key, board.add("incident")) for key in sorted(keys))
            )
    say("")
    for view in views:
        say(
            f"{view.source_workflow}: {view.status} after {view.attempts} attempt(s), "
            f"{view.event_count} event(s) — {view.close_reason or view.latest_action or ''}"
        )
        link = workflow_ui_url(
            endpoints.ui_url or None, settings.temporal_namespace, view.workflow_id
        )
        if link is not None:
            say(f"  {link}")
        if view.status == "escalated":
            _acknowledge_hints(endpoints, view.workflow_id)
    say(
        f"callback calls: demo-orders {len(recovering.calls)}, demo-payments {len(broken.calls)}"
        f"; pages sent: {len(pager.calls)}"
    )


def _acknowledge_hints(endpoints: Endpoints, workflow_id: str) -> None:
    """Print how to acknowledge an escalation, as commands that run as pasted."""
    temporal = shown_path(script_path("temporal"))
    awfdrs = shown_path(script_path("awfdrs"))
    say(
        f"  acknowledge: {temporal} workflow signal --address {endpoints.temporal_address}"
        f" --workflow-id '{workflow_id}' --name acknowledge --input '{{\"by\": \"you\"}}'"
    )
    say(
        f"          or: {awfdrs} incidents acknowledge '{workflow_id}' --by you"
        f"{data_dir_flag(endpoints.data_dir)}"
    )
