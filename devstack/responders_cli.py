"""`awfdrs responders`: the secrets PagerDuty and Opsgenie webhooks are verified with.

`add` stores a secret (PagerDuty's, read from stdin so it stays out of shell history; for
Opsgenie AWFDRS generates one when none is piped in and prints it once), `list` shows them
masked with the webhook URL to configure, `retire` stops accepting one.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from devstack.cli_render import render
from devstack.operator_cli import CliError, _call, _common, credentials

SYSTEMS = ("pagerduty", "opsgenie")
COLUMNS = ("id", "system", "masked", "active", "created_at", "retired_at")


def add_responders_command(commands: Any) -> None:
    """Register `responders add|list|retire`."""
    common = _common()
    responders = commands.add_parser(
        "responders", help="secrets of PagerDuty and Opsgenie webhooks (two-way)"
    )
    actions = responders.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", parents=common, help="accept one more secret")
    add.add_argument("system", choices=SYSTEMS)
    add.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the secret from stdin (required for PagerDuty: its subscription's secret)",
    )
    listing = actions.add_parser("list", parents=common, help="the secrets, masked")
    listing.add_argument("system", choices=SYSTEMS)
    retire = actions.add_parser("retire", parents=common, help="stop accepting a secret")
    retire.add_argument("system", choices=SYSTEMS)
    retire.add_argument("secret_id")


def run_responders_command(args: argparse.Namespace) -> None:
    """Execute one `responders` command and print its result."""
    url, key = credentials(args)
    with httpx.Client(
        base_url=f"{url}/api/v1", timeout=15, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        result, columns = _dispatch(http, args, url)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(result, columns) + "\n")


def _dispatch(
    http: httpx.Client, args: argparse.Namespace, url: str
) -> tuple[Any, tuple[str, ...]]:
    path = f"/integrations/{args.system}/webhook-secrets"
    if args.action == "list":
        return _call(http, "GET", path), COLUMNS
    if args.action == "retire":
        return _call(http, "DELETE", f"{path}/{args.secret_id}"), ()
    body = {"secret": _read_secret()} if args.secret_stdin else None
    created: dict[str, Any] = _call(http, "POST", path, json=body)
    created["webhook_url"] = url + created.pop("webhook_path")
    return created, ()


def _read_secret() -> str:
    secret = sys.stdin.read().strip()
    if not secret:
        raise CliError("awfdrs responders add: --secret-stdin read nothing from stdin")
    return secret
