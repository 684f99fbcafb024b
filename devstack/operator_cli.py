"""Operator commands of `awfdrs`: events, incidents, kill switches and vendors over REST.

Credentials, in order: --api-url/--api-key, AWFDRS_API_URL/AWFDRS_API_KEY, the JSON config file
(AWFDRS_CLI_CONFIG, default ~/.config/awfdrs/cli.json: {"api_url": …, "api_key": …}), and
finally the local `awfdrs up` stack in --data-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from devstack.cli_render import render
from vocabulary import EventType

CONTROLS = ("pause", "resume", "kill", "resolve", "acknowledge", "approve", "reject")
# Controls whose body may name who sends them (`by`); every control takes a `reason`.
CONTROLS_WITH_BY = ("pause", "resume", "acknowledge", "approve", "reject")
PAGE_SIZE = 500  # the API's largest page
LIST_FILTERS = ("status", "severity", "workflow", "vendor")
INCIDENT_COLUMNS = (
    "id",
    "status",
    "severity",
    "source_workflow",
    "error_code",
    "vendor",
    "event_count",
    "attempts",
    "last_seen_at",
)


class CliError(SystemExit):
    """A request failed; the message is the API's problem detail."""


def _common() -> list[argparse.ArgumentParser]:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--plain", action="store_true", help="plain text even on a terminal")
    common.add_argument("--api-url")
    common.add_argument("--api-key")
    common.add_argument("--data-dir", type=Path, default=Path(".awfdrs"))
    return [common]


def add_operator_commands(commands: Any) -> None:
    """Register `events`, `incidents`, `kill-switch` and `vendors` on the parser."""
    common = _common()
    events = commands.add_parser("events", help="send events").add_subparsers(
        dest="action", required=True
    )
    send = events.add_parser("send", help="POST one event", parents=common)
    send.add_argument("--workflow", required=True)
    send.add_argument(
        "--type", default=EventType.STEP_FAILED, choices=list(EventType), dest="event_type"
    )
    send.add_argument("--step")
    send.add_argument("--vendor")
    send.add_argument("--code")
    send.add_argument("--message")
    send.add_argument("--key", help="idempotency key (default: random)")
    send.add_argument("--payload", type=json.loads, default={}, help="JSON object")

    incidents = commands.add_parser("incidents", help="list, inspect and control incidents")
    actions = incidents.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=common)
    for name in LIST_FILTERS:
        listing.add_argument(f"--{name}")
    amount = listing.add_mutually_exclusive_group()
    amount.add_argument("--limit", type=_positive, default=50, help="at most this many (50)")
    amount.add_argument("--all", action="store_true", help="every page, following next_cursor")
    for name in ("show", "timeline", *CONTROLS):
        command = actions.add_parser(name, parents=common)
        command.add_argument("incident_id", help="the incident's id or its workflow id")
        if name in CONTROLS:
            command.add_argument("--reason", help="recorded with the signal")
        if name in CONTROLS_WITH_BY:
            command.add_argument(
                "--by", help="a note for the audit row; who acted is always the credential"
            )

    switch = commands.add_parser("kill-switch", help="stop remediation of a workflow")
    switch_actions = switch.add_subparsers(dest="action", required=True)
    on = switch_actions.add_parser("on", parents=common)
    on.add_argument("--workflow", required=True)
    on.add_argument("--vendor")
    on.add_argument("--reason", required=True)
    on.add_argument("--expires-at", help="ISO 8601 with a zone: the switch lapses then")
    off = switch_actions.add_parser("off", parents=common)
    off.add_argument("switch_id")
    switch_actions.add_parser("list", parents=common)

    vendors = commands.add_parser("vendors", help="circuit breakers per vendor", parents=common)
    vendors.add_argument(
        "action", nargs="?", default="list", choices=("list", "open", "close", "reset")
    )
    vendors.add_argument("name", nargs="?")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def credentials(args: argparse.Namespace) -> tuple[str, str]:
    """Resolve the API URL and key from flags, environment, config file or local stack."""
    config_path = Path(
        os.environ.get("AWFDRS_CLI_CONFIG", Path.home() / ".config" / "awfdrs" / "cli.json")
    )
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    endpoints = args.data_dir / "run" / "endpoints.json"
    local = json.loads(endpoints.read_text()) if endpoints.exists() else {}
    key_file = args.data_dir / "demo_api_key"
    url = (
        args.api_url
        or os.environ.get("AWFDRS_API_URL")
        or config.get("api_url")
        or local.get("api_url")
        or "http://127.0.0.1:8000"
    )
    key = (
        args.api_key
        or os.environ.get("AWFDRS_API_KEY")
        or config.get("api_key")
        or (key_file.read_text().strip() if key_file.exists() else None)
    )
    if not key:
        raise CliError(
            f"awfdrs: no API key: pass --api-key, set AWFDRS_API_KEY, or write {config_path}"
        )
    return url.rstrip("/"), key


def run_operator_command(args: argparse.Namespace) -> None:
    """Execute one operator command and print its result."""
    url, key = credentials(args)
    with httpx.Client(
        base_url=f"{url}/api/v1", timeout=15, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        result, columns = _dispatch(http, args)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(result, columns, plain=args.plain) + "\n")


def _dispatch(http: httpx.Client, args: argparse.Namespace) -> tuple[Any, tuple[str, ...]]:
    command, action = args.command, str(getattr(args, "action", ""))
    if command == "events":
        body = {
            "idempotency_key": args.key or f"cli-{uuid.uuid4().hex}",
            "workflow": args.workflow,
            "event_type": args.event_type,
            "step": args.step,
            "vendor": args.vendor,
            "payload": args.payload,
        }
        if args.code or args.message:
            body["error"] = {"code": args.code, "message": args.message}
        return _call(http, "POST", "/events", json=body), ()
    if command == "incidents":
        return _incidents(http, args, action)
    if command == "kill-switch":
        if action == "on":
            return _call(
                http,
                "POST",
                "/kill-switches",
                json={
                    "workflow": args.workflow,
                    "vendor": args.vendor,
                    "reason": args.reason,
                    "expires_at": args.expires_at,
                },
            ), ()
        if action == "off":
            return _call(http, "DELETE", f"/kill-switches/{args.switch_id}"), ()
        return _call(http, "GET", "/kill-switches"), (
            "id",
            "workflow",
            "vendor",
            "active",
            "expires_at",
            "reason",
            "actor",
            "created_at",
        )
    if args.action != "list":
        if not args.name:
            raise CliError("awfdrs vendors open|close|reset needs a vendor name")
        return _call(http, "POST", f"/vendors/{args.name}/circuit/{args.action}"), ()
    return _call(http, "GET", "/vendors"), (
        "name",
        "circuit_state",
        "open_for_s",
        "rate_limit_per_s",
        "failure_rate_threshold",
    )


def _incidents(
    http: httpx.Client, args: argparse.Namespace, action: str
) -> tuple[Any, tuple[str, ...]]:
    if action == "list":
        return _list_incidents(http, args), INCIDENT_COLUMNS
    # A workflow id (`incident:<tenant>:<signature>`) travels as typed; anything that would
    # change the path (`/`, `?`, `#`, spaces) is escaped rather than reinterpreted.
    path = f"/incidents/{quote(args.incident_id, safe=':')}"
    if action == "show":
        return _call(http, "GET", path), ()
    if action == "timeline":
        return _call(http, "GET", f"{path}/timeline")["entries"], ("at", "kind", "summary", "cause")
    body = {k: v for k in ("reason", "by") if (v := getattr(args, k, None))}
    return _call(http, "POST", f"{path}/{action}", json=body or None), ()


def _list_incidents(http: httpx.Client, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Follow `next_cursor` up to --limit rows (or to the end with --all); say if more exist."""
    filters = {k: v for k in LIST_FILTERS if (v := getattr(args, k))}
    wanted = None if args.all else args.limit
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        size = PAGE_SIZE if wanted is None else min(PAGE_SIZE, wanted - len(items))
        params = {**filters, "limit": size, **({"cursor": cursor} if cursor else {})}
        page = _call(http, "GET", "/incidents", params=params)
        items += page["items"]
        cursor = page.get("next_cursor")
        if cursor is None or (wanted is not None and len(items) >= wanted):
            break
    if cursor is not None:
        # On stderr, so that `--json` output stays one parseable document.
        sys.stderr.write(f"showing {len(items)} — more exist, use --limit N or --all\n")
    return items


def _call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = http.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise CliError(f"awfdrs: cannot reach the API at {http.base_url}: {exc}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        raise CliError(f"awfdrs: {method} {path} failed ({response.status_code}): {detail}")
    return response.json() if response.content else {}
