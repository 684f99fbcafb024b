"""Local stand-ins for PagerDuty, Opsgenie and Slack that check each vendor's documented rules.

Each wraps a real `CallbackServer`, records every call and lists what a real vendor would
have rejected in `problems`: a test asserts that list is empty, and reads the calls.
Vendor requests are not Standard Webhooks: they must carry no AWFDRS signature headers (so the
signature audit, which verifies calls that claim to be signed, leaves them alone).
"""

from __future__ import annotations

import re
from typing import Any, Self

from devstack.http_target import Call, CallbackServer, Reply
from tests.utils.signatures import is_signed_by_awfdrs

PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
PD_SEVERITIES = {"critical", "error", "warning", "info"}
OPSGENIE_PRIORITIES = {"P1", "P2", "P3", "P4", "P5"}
OPSGENIE_RESPONDER_TYPES = {"team", "user", "escalation", "schedule"}
SLACK_BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image"}
_OPSGENIE_ACTION = re.compile(r"^/v2/alerts/([^/?]+)/(acknowledge|close)\?identifierType=alias$")


class VendorReceiver:
    """A CallbackServer whose every call is checked by `check` (problems are recorded)."""

    vendor = "vendor"

    def __init__(self, script: list[Reply] | None = None) -> None:
        self.server = CallbackServer(script or [Reply(202)])
        self.server.on_call = self._on_call
        self.problems: list[str] = []

    async def __aenter__(self) -> Self:
        await self.server.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.__aexit__(*exc)

    @property
    def calls(self) -> list[Call]:
        """Every call received, in order."""
        return self.server.calls

    @property
    def base(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.server.port}"

    async def _on_call(self, call: Call) -> None:
        if is_signed_by_awfdrs(call):
            self.problems.append(f"{self.vendor}: a vendor request carries AWFDRS signatures")
        self.problems += [f"{self.vendor} {call.path}: {p}" for p in self.check(call)]

    def check(self, call: Call) -> list[str]:
        """What the vendor would reject in this call."""
        raise NotImplementedError


class PagerDutyReceiver(VendorReceiver):
    """PagerDuty Events API v2 (`POST /v2/enqueue`)."""

    vendor = "pagerduty"

    @property
    def url(self) -> str:
        """The Events API endpoint."""
        return f"{self.base}/v2/enqueue"

    def check(self, call: Call) -> list[str]:
        """routing_key (32), event_action, dedup_key (≤ 255), and a trigger's payload."""
        body, problems = call.body, []
        if call.path != "/v2/enqueue":
            problems.append("not the /v2/enqueue endpoint")
        if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
            problems.append("routing_key must be 32 characters")
        if body.get("event_action") not in PD_ACTIONS:
            problems.append(f"event_action {body.get('event_action')!r} is not one of {PD_ACTIONS}")
        dedup = body.get("dedup_key")
        if not isinstance(dedup, str) or not 0 < len(dedup) <= 255:
            problems.append("dedup_key must be 1-255 characters")
        if body.get("event_action") == "trigger":
            problems += _pagerduty_payload(body.get("payload"))
        return problems

    def actions(self) -> list[tuple[str, str]]:
        """(event_action, dedup_key) of every call."""
        return [(c.body.get("event_action", ""), c.body.get("dedup_key", "")) for c in self.calls]


def _pagerduty_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["a trigger needs a payload"]
    problems = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
        problems.append("payload.summary must be 1-1024 characters")
    if not payload.get("source"):
        problems.append("payload.source is required")
    if payload.get("severity") not in PD_SEVERITIES:
        problems.append(f"payload.severity {payload.get('severity')!r} is not allowed")
    return problems


class OpsgenieReceiver(VendorReceiver):
    """Opsgenie Alert API v2: create, acknowledge and close by alias."""

    vendor = "opsgenie"

    def check(self, call: Call) -> list[str]:
        """GenieKey auth; message ≤ 130, alias ≤ 512, priority P1-P5; actions by alias."""
        problems = []
        if not call.headers.get("authorization", "").startswith("GenieKey "):
            problems.append("Authorization must be `GenieKey <key>`")
        if call.path == "/v2/alerts":
            problems += _opsgenie_alert(call.body)
        elif not _OPSGENIE_ACTION.match(call.path):
            problems.append("not an alert create, acknowledge or close by alias")
        return problems

    def actions(self) -> list[tuple[str, str]]:
        """(create|acknowledge|close, alias) of every call."""
        found = []
        for call in self.calls:
            match = _OPSGENIE_ACTION.match(call.path)
            found.append((match[2], match[1]) if match else ("create", call.body.get("alias", "")))
        return found


def _opsgenie_alert(body: dict[str, Any]) -> list[str]:
    problems = []
    message = body.get("message")
    if not isinstance(message, str) or not 0 < len(message) <= 130:
        problems.append("message must be 1-130 characters")
    alias = body.get("alias")
    if alias is not None and (not isinstance(alias, str) or len(alias) > 512):
        problems.append("alias must be at most 512 characters")
    if "priority" in body and body["priority"] not in OPSGENIE_PRIORITIES:
        problems.append(f"priority {body['priority']!r} is not P1-P5")
    for responder in body.get("responders", []):
        if responder.get("type") not in OPSGENIE_RESPONDER_TYPES:
            problems.append(f"responder type {responder.get('type')!r} is not allowed")
        if not ({"id", "name", "username"} & set(responder)):
            problems.append("a responder needs an id, name or username")
    return problems


class SlackReceiver(VendorReceiver):
    """A Slack incoming webhook: `text` and/or a valid Block Kit `blocks` list."""

    vendor = "slack"

    @property
    def url(self) -> str:
        """An incoming-webhook URL on this server."""
        return f"{self.base}/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"

    def check(self, call: Call) -> list[str]:
        """Text or blocks; at most 50 blocks of known types within Block Kit's limits."""
        body = call.body
        if not body.get("text") and not body.get("blocks"):
            return ["a message needs text or blocks"]
        blocks = body.get("blocks", [])
        problems = [] if len(blocks) <= 50 else ["more than 50 blocks"]
        for block in blocks:
            problems += _slack_block(block)
        return problems

    def headings(self) -> list[str]:
        """The header text of every message, in order."""
        return [
            block["text"]["text"]
            for call in self.calls
            for block in call.body.get("blocks", [])
            if block.get("type") == "header"
        ]


def _slack_block(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind not in SLACK_BLOCK_TYPES:
        return [f"unknown block type {kind!r}"]
    if kind == "header":
        text = block.get("text", {})
        if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
            return ["a header needs plain_text of 1-150 characters"]
    if kind == "section":
        if "text" not in block and "fields" not in block:
            return ["a section needs text or fields"]
        if len(block.get("text", {}).get("text", "")) > 3000:
            return ["a section's text is over 3000 characters"]
        if len(block.get("fields", [])) > 10:
            return ["a section has more than 10 fields"]
    if kind == "context" and not 0 < len(block.get("elements", [])) <= 10:
        return ["a context block needs 1-10 elements"]
    return []
