"""Escalation policies and each vendor's wire format, checked without a network."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from activities.escalation import pagerduty_body
from activities.responders import incident_links
from activities.vendor_formats import (
    IncidentFacts,
    build_request,
    opsgenie_request,
    webhook_body,
)
from rules.policy import load_policies
from rules.targets import EscalationPolicy, OpsgenieTarget, masked_policy
from vocabulary import PageSeverity
from workflows.activity_payloads import EscalationRequest
from workflows.incident_state import EscalationStep

ROUTING_KEY = "R" * 28 + "wxyz"
FACTS = IncidentFacts(
    incident_id="0b7e1c2a-0000-4000-8000-000000000001",
    summary="x" * 5000,
    source_workflow="billing-sync",
    severity="error",
    level=1,
    level_name="on-call",
    attempts=3,
    event_count=7,
    last_error="card declined",
    links={"Web UI": "http://ui.example/w/1"},
)


def _policy(**level: object) -> EscalationPolicy:
    return EscalationPolicy.model_validate(
        {"levels": [{"name": "on-call", "ack_timeout_s": 60, **level}]}
    )


def test_the_shipped_policy_reads_its_webhook_levels_as_webhook_targets() -> None:
    levels = load_policies().escalation.levels
    assert [(lvl.name, [t.type for t in lvl.targets]) for lvl in levels] == [
        ("on-call", ["webhook"]),
        ("team-lead", ["webhook"]),
    ]


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ({"type": "pagerduty", "routing_key": "short"}, "routing_key"),
        ({"type": "opsgenie", "api_key": "k" * 20, "region": "ap"}, "region"),
        ({"type": "slack", "url": "ftp://hooks.slack.com/x"}, "url"),
        ({"type": "sms", "url": "https://x.example"}, "type"),
    ],
)
def test_a_malformed_target_is_refused_naming_its_field(
    target: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        _policy(targets=[target])
    assert field in str(refused.value)


def test_a_policy_shows_every_credential_as_its_last_four_characters() -> None:
    policy = _policy(
        targets=[{"type": "pagerduty", "routing_key": ROUTING_KEY}],
        fallback={"type": "slack", "url": "https://hooks.slack.com/services/T/B/secretTOKEN"},
    )
    shown = masked_policy(policy)["levels"][0]
    assert shown["targets"][0]["routing_key"] == "••••wxyz"
    assert shown["targets"][0]["url"] == "https://events.pagerduty.com/v2/enqueue"  # no secret
    assert shown["fallback"]["url"] == "••••OKEN"


def test_pagerduty_events_keep_vendor_limits_and_one_dedup_key() -> None:
    target = (
        _policy(
            targets=[
                {"type": "pagerduty", "routing_key": ROUTING_KEY, "severity": {"error": "critical"}}
            ]
        )
        .levels[0]
        .targets[0]
    )
    trigger = build_request(target, "trigger", FACTS, "").body
    resolve = build_request(target, "resolve", FACTS, "").body
    assert len(trigger["payload"]["summary"]) == 1024
    assert trigger["payload"]["severity"] == "critical"  # the target's mapping
    assert trigger["dedup_key"] == resolve["dedup_key"] == FACTS.incident_id
    assert "payload" not in resolve


def test_opsgenie_alerts_are_created_then_acted_on_by_alias_in_their_region() -> None:
    target = OpsgenieTarget(api_key="abcd-1234-efgh", region="eu")
    create = opsgenie_request(target, "trigger", FACTS)
    close = opsgenie_request(target, "resolve", FACTS)
    assert create.url == "https://api.eu.opsgenie.com/v2/alerts"
    assert create.headers == {"Authorization": "GenieKey abcd-1234-efgh"}
    assert len(create.body["message"]) == 130 and create.body["alias"] == FACTS.incident_id
    assert create.body["priority"] == "P2"
    assert close.url == (
        f"https://api.eu.opsgenie.com/v2/alerts/{FACTS.incident_id}/close?identifierType=alias"
    )


def test_only_webhook_targets_are_signed() -> None:
    policy = _policy(
        targets=[
            {"type": "slack", "url": "https://hooks.slack.com/services/T/B/x"},
            {"type": "webhook", "url": "workflow"},
        ]
    )
    slack, hook = (
        build_request(t, "trigger", FACTS, "https://h.example/p") for t in policy.levels[0].targets
    )
    assert (slack.signed, hook.signed) == (False, True)
    assert hook.url == "https://h.example/p"
    assert slack.body["blocks"][0]["type"] == "header"


def test_messages_link_to_the_incident_in_the_api_and_the_web_ui_when_configured() -> None:
    links = incident_links(
        api_base="https://awfdrs.example.com", ui_url="http://ui/w/1", incident_id="abc"
    )
    assert list(links.values()) == [
        "https://awfdrs.example.com/api/v1/incidents/abc",
        "http://ui/w/1",
    ]
    assert incident_links(api_base=None, ui_url=None, incident_id="abc") == {}
    alert = build_request(OpsgenieTarget(api_key="abcd-1234-efgh"), "trigger", FACTS, "")
    assert "http://ui.example/w/1" in alert.body["description"]


def test_a_webhook_target_gets_the_same_signed_page_as_before_typed_targets() -> None:
    step = EscalationStep("on-call", None, 900, PageSeverity.ERROR)
    legacy = EscalationRequest(
        tenant_id="t",
        incident_id=FACTS.incident_id,
        workflow_id="incident:t:s",
        level=1,
        step=step,
        summary=FACTS.summary,
        source_workflow="billing-sync",
        error_code="VENDOR_TIMEOUT",
        vendor="stripe",
        event_count=7,
        attempts=3,
        correlation_id="corr",
    )
    facts = replace(
        FACTS,
        error_code="VENDOR_TIMEOUT",
        vendor="stripe",
        links={"Incident timeline (Temporal Web UI)": "https://ui.example/x"},
    )
    assert webhook_body("trigger", facts) == pagerduty_body(legacy, "https://ui.example/x")
