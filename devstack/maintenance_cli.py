"""`awfdrs maintenance add|list|end`: maintenance windows over REST."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

import httpx

from devstack.cli_render import render
from devstack.operator_cli import _call, _common, credentials
from vocabulary import MaintenanceMode

MATCHERS = ("workflow", "vendor", "error_code", "step")
COLUMNS = ("id", "mode", "matchers", "reason", "next_starts_at", "next_ends_at", "active_now")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> int:
    """Parse `90`, `90s`, `30m`, `2h` or `1d` into seconds."""
    found = _DURATION.match(text.strip())
    if found is None or int(found.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 2h or 1d")
    return int(found.group(1)) * _UNIT_S[found.group(2)]


def add_maintenance_command(commands: Any) -> None:
    """Register `maintenance add|list|end` on the parser."""
    common = _common()
    parser = commands.add_parser("maintenance", help="suppress or hold failures in a window")
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", parents=common, help="create a window")
    for name in MATCHERS:
        add.add_argument(f"--{name.replace('_', '-')}", help="exact value or glob (default *)")
    add.add_argument("--starts-at", help="ISO 8601 with a zone (default: now)")
    end = add.add_mutually_exclusive_group(required=True)
    end.add_argument("--ends-at", help="ISO 8601 with a zone")
    end.add_argument("--duration", type=duration_s, help="each occurrence: 90s, 30m, 2h, 1d")
    add.add_argument("--recurrence", help="an RRULE, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2")
    add.add_argument("--mode", choices=list(MaintenanceMode), default=MaintenanceMode.SUPPRESS)
    add.add_argument("--reason", required=True)
    listing = actions.add_parser("list", parents=common, help="active and upcoming windows")
    listing.add_argument("--all", action="store_true", help="ended and past windows too")
    finish = actions.add_parser("end", parents=common, help="end a window now")
    finish.add_argument("window_id")


def run_maintenance_command(args: argparse.Namespace) -> None:
    """Execute one `maintenance` action and print its result."""
    url, key = credentials(args)
    with httpx.Client(
        base_url=f"{url}/api/v1", timeout=15, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        result = _dispatch(http, args)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    else:
        rows = result if isinstance(result, list) else [result]
        sys.stdout.write(render([_row(window) for window in rows], COLUMNS) + "\n")


def _dispatch(http: httpx.Client, args: argparse.Namespace) -> Any:
    if args.action == "add":
        return _call(http, "POST", "/maintenance-windows", json=_body(args))
    if args.action == "end":
        return _call(http, "DELETE", f"/maintenance-windows/{args.window_id}")
    params = {"include_past": "true"} if args.all else None
    return _call(http, "GET", "/maintenance-windows", params=params)


def _body(args: argparse.Namespace) -> dict[str, Any]:
    matchers = {name: value for name in MATCHERS if (value := getattr(args, name))}
    body: dict[str, Any] = {
        "matchers": matchers,
        "starts_at": args.starts_at or datetime.now(UTC).isoformat(),
        "mode": args.mode,
        "reason": args.reason,
    }
    if args.ends_at:
        body["ends_at"] = args.ends_at
    else:
        body["duration_s"] = args.duration
    if args.recurrence:
        body["recurrence"] = args.recurrence
    return body


def _row(window: dict[str, Any]) -> dict[str, Any]:
    """One table row: matchers other than `*` on one line, the next occurrence split out."""
    matchers = window.get("matchers") or {}
    upcoming = window.get("next_occurrence") or {}
    return {
        **window,
        "matchers": " ".join(f"{k}={v}" for k, v in matchers.items() if v != "*") or "*",
        "next_starts_at": upcoming.get("starts_at", "-"),
        "next_ends_at": upcoming.get("ends_at", "-"),
    }
