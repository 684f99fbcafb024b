"""`awfdrs escalation-policies list|show` and `awfdrs notify test <target>` over REST."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from devstack.cli_render import render
from devstack.operator_cli import CliError, _call, credentials

POLICY_COLUMNS = ("name", "levels", "targets", "notify_rules")
SENT_COLUMNS = ("event", "delivered", "http_status", "detail")


def add_responder_commands(commands: Any) -> None:
    """Register `escalation-policies` and `notify` on the parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--api-url")
    common.add_argument("--api-key")
    common.add_argument("--data-dir", type=Path, default=Path(".awfdrs"))
    policies = commands.add_parser("escalation-policies", help="who gets paged, and how")
    actions = policies.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common], help="the default and each workflow's policy")
    show = actions.add_parser("show", parents=[common], help="one policy, credentials masked")
    show.add_argument("name", help="`default`, `tenant`, a named policy or a workflow's name")
    notify = commands.add_parser("notify", help="responder targets")
    notify_actions = notify.add_subparsers(dest="action", required=True)
    test = notify_actions.add_parser("test", parents=[common], help="send a test message")
    test.add_argument(
        "target",
        type=parse_target,
        help="POLICY:LEVEL[:INDEX] (INDEX `fallback` for the level's fallback; LEVEL 0: "
        "notification targets), e.g. billing-sync:1:0 or default:2",
    )


def parse_target(text: str) -> dict[str, Any]:
    """Read `policy:level[:index]` into the body of `POST /notify/test`."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise argparse.ArgumentTypeError(f"{text!r} is not POLICY:LEVEL[:INDEX]")
    index = parts[2] if len(parts) == 3 else "0"
    try:
        level = int(parts[1])
        position = -1 if index == "fallback" else int(index)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: LEVEL and INDEX are numbers") from None
    return {"policy": parts[0], "level": level, "index": position}


def run_responder_command(args: argparse.Namespace) -> None:
    """Execute one command and print its result."""
    url, key = credentials(args)
    with httpx.Client(
        base_url=f"{url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        result, columns = _dispatch(http, args)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(result, columns) + "\n")


def _dispatch(http: httpx.Client, args: argparse.Namespace) -> tuple[Any, tuple[str, ...]]:
    if args.command == "escalation-policies" and args.action == "list":
        return _call(http, "GET", "/escalation-policies"), POLICY_COLUMNS
    if args.command == "escalation-policies":
        return _call(http, "GET", f"/escalation-policies/{args.name}"), ()
    answer = _call(http, "POST", "/notify/test", json=args.target)
    if not all(sent["delivered"] for sent in answer["sent"]):
        sys.stdout.write(render(answer["sent"], SENT_COLUMNS) + "\n")
        raise CliError(f"awfdrs: the {answer['target_type']} target did not take the message")
    return answer["sent"], SENT_COLUMNS
