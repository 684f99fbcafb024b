"""Each responder's wire format: PagerDuty Events v2, Opsgenie Alert API v2, Slack, webhooks.

Pure builders: given a target, a lifecycle event and the incident's facts, return the request
to send. Only webhook requests are signed; the vendors authenticate by their own keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rules.targets import OpsgenieTarget, PagerDutyTarget, SlackTarget, Target, WebhookTarget
from vocabulary import PageSeverity

SUMMARY_LIMIT = 1024  # PagerDuty payload.summary
MESSAGE_LIMIT = 130  # Opsgenie message
# The escalation ladder's own events; any other event is a notification.
TRIGGER, ACKNOWLEDGE, RESOLVE = "trigger", "acknowledge", "resolve"
_SLACK_HEADINGS = {
    TRIGGER: ":rotating_light: Escalated",
    ACKNOWLEDGE: ":eyes: Acknowledged",
    RESOLVE: ":white_check_mark: Closed",
    "opened": ":large_yellow_circle: Opened",
    "escalated": ":rotating_light: Escalated",
    "acknowledged": ":eyes: Acknowledged",
    "resolved": ":white_check_mark: Resolved",
    "killed": ":octagonal_sign: Killed",
    "flapping": ":repeat: Flapping",
    "test": ":wave: Test message",
}


@dataclass(frozen=True)
class IncidentFacts:
    """What a message says about the incident."""

    incident_id: str
    summary: str
    source_workflow: str
    severity: str
    level: int
    level_name: str
    attempts: int
    event_count: int
    error_code: str | None = None
    vendor: str | None = None
    status: str = ""
    last_error: str | None = None
    links: dict[str, str] = field(default_factory=dict)  # label → URL (API, Web UI)


@dataclass(frozen=True)
class VendorRequest:
    """The URL and JSON body to POST, and vendor headers; `signed` for webhook targets."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    signed: bool = False


def build_request(target: Target, event: str, facts: IncidentFacts, url: str) -> VendorRequest:
    """Build `event` for `target`; `url` is the target's resolved address (webhook: unsealed)."""
    if isinstance(target, PagerDutyTarget):
        return pagerduty_request(target, event, facts)
    if isinstance(target, OpsgenieTarget):
        return opsgenie_request(target, event, facts)
    if isinstance(target, SlackTarget):
        return VendorRequest(target.url, slack_body(event, facts))
    assert isinstance(target, WebhookTarget)
    return VendorRequest(url, webhook_body(event, facts), signed=True)


def pagerduty_request(target: PagerDutyTarget, event: str, facts: IncidentFacts) -> VendorRequest:
    """An Events API v2 event: the dedup_key (the incident id) ties trigger, ack and resolve."""
    action = event if event in (TRIGGER, ACKNOWLEDGE, RESOLVE) else TRIGGER
    body: dict[str, Any] = {
        "routing_key": target.routing_key,
        "event_action": action,
        "dedup_key": facts.incident_id,
    }
    if action == TRIGGER:
        level_severity = PageSeverity(facts.severity)
        body["payload"] = {
            "summary": facts.summary[:SUMMARY_LIMIT],
            "source": facts.source_workflow,
            "severity": str(target.severity.get(level_severity, level_severity)),
            "component": facts.vendor or facts.source_workflow,
            "group": facts.source_workflow,
            "class": facts.error_code or "unknown",
            "custom_details": _details(facts),
        }
        body["links"] = [{"href": href, "text": text} for text, href in facts.links.items()]
    return VendorRequest(target.url, body)


def opsgenie_request(target: OpsgenieTarget, event: str, facts: IncidentFacts) -> VendorRequest:
    """Create the alert (alias = incident id), or acknowledge or close it by its alias."""
    headers = {"Authorization": f"GenieKey {target.api_key}"}
    alerts = f"{target.base_url}/v2/alerts"
    if event in (ACKNOWLEDGE, RESOLVE):
        verb = "acknowledge" if event == ACKNOWLEDGE else "close"
        url = f"{alerts}/{quote(facts.incident_id, safe='')}/{verb}?identifierType=alias"
        note = {"source": "AWFDRS", "note": f"{verb}d in AWFDRS ({facts.status or event})"}
        return VendorRequest(url, note, headers)
    body: dict[str, Any] = {
        "message": facts.summary[:MESSAGE_LIMIT],
        "alias": facts.incident_id,
        "description": _description(facts),
        "responders": [dict(r) for r in target.responders],
        "priority": target.priority.get(PageSeverity(facts.severity), "P3"),
        "source": "AWFDRS",
        "details": {k: str(v) for k, v in _details(facts).items()},
    }
    return VendorRequest(alerts, body, headers)


def slack_body(event: str, facts: IncidentFacts) -> dict[str, Any]:
    """A Block Kit message: heading, the incident's fields and its links."""
    heading = f"{_SLACK_HEADINGS.get(event, event)}: {facts.source_workflow}"
    fields = [
        f"*Severity*\n{facts.severity}",
        f"*Workflow*\n{facts.source_workflow}",
        f"*Vendor*\n{facts.vendor or '—'}",
        f"*Attempts*\n{facts.attempts}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": heading[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": facts.summary[:3000]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    if facts.last_error:
        error = f"*Last error*\n```{facts.last_error[:2800]}```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": error}})
    if facts.links:
        links = " · ".join(f"<{href}|{text}>" for text, href in facts.links.items())
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
    return {"text": f"{heading} — {facts.summary}"[:3000], "blocks": blocks}


def webhook_body(event: str, facts: IncidentFacts) -> dict[str, Any]:
    """The signed webhook body: a trigger keeps its PagerDuty Events v2 shape, as before."""
    body: dict[str, Any] = {
        "event_action": event,
        "dedup_key": facts.incident_id,
        "payload": {
            "summary": facts.summary[:SUMMARY_LIMIT],
            "source": facts.source_workflow,
            "severity": facts.severity,
            "component": facts.vendor or facts.source_workflow,
            "group": facts.source_workflow,
            "class": facts.error_code or "unknown",
            "custom_details": _details(facts),
        },
    }
    if facts.links:
        body["links"] = [{"href": href, "text": text} for text, href in facts.links.items()]
    return body


def _details(facts: IncidentFacts) -> dict[str, Any]:
    return {
        "incident_id": facts.incident_id,
        "level": facts.level,
        "level_name": facts.level_name,
        "attempts": facts.attempts,
        "event_count": facts.event_count,
    }


def _description(facts: IncidentFacts) -> str:
    lines = [facts.summary, f"workflow: {facts.source_workflow}", f"attempts: {facts.attempts}"]
    if facts.last_error:
        lines.append(f"last error: {facts.last_error}")
    lines += [f"{text}: {href}" for text, href in facts.links.items()]
    return "\n".join(lines)[:15000]
