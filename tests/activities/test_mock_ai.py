"""The mock AI's reasoning, without a database: detector, similarity, hypothesis, plan."""

from __future__ import annotations

from typing import Any

import pytest

from activities import mock_ai
from rules.policy import load_policies
from vocabulary import ApprovalMode, PageSeverity, Severity
from workflows.activity_payloads import DecisionRequest

POLICIES = load_policies()
CATALOG = POLICIES.error_codes


def _request(code: str, *, failures: int = 1) -> DecisionRequest:
    return DecisionRequest(
        tenant_id="t",
        incident_id="i",
        workflow_id="w",
        source_workflow="billing-sync",
        step="charge-card",
        error_code=code,
        error_message=None,
        vendor="stripe",
        event_count=failures,
        failure_count=failures,
    )


def _past(n: int, workflow: str, code: str | None) -> dict[str, Any]:
    return {
        "id": n,
        "title": f"incident {n}",
        "status": "resolved",
        "attempts": n,
        "source_workflow": workflow,
        "step": "charge-card" if code else None,
        "error_code": code,
        "vendor": "stripe" if code else None,
    }


@pytest.mark.parametrize(
    ("code", "message", "shown", "confidence", "how"),
    [
        ("VENDOR_TIMEOUT", None, "VENDOR_TIMEOUT", 0.95, "Matched by catalogue code"),
        ("gateway_timeout", None, "VENDOR_TIMEOUT", 0.9, "Matched by alias"),
        (None, "upstream timed out after 30s", "VENDOR_TIMEOUT", 0.7, "Matched by message"),
        ("ACME_42", "no idea", "ACME_42", 0.3, "Neither the catalogue nor a message pattern"),
    ],
)
def test_the_detector_tries_the_code_then_the_message_and_keeps_unknown_codes(
    code: str | None, message: str | None, shown: str, confidence: float, how: str
) -> None:
    decision = mock_ai.classify(CATALOG, code, message)
    assert (decision.output["code"], decision.confidence) == (shown, confidence)
    assert decision.reasoning.startswith(how)
    assert (decision.key, decision.model) == ("classify", mock_ai.DETECTOR)
    assert decision.inputs == {"code": code, "message": message}


def test_an_unknown_code_is_handled_as_the_default_and_says_so() -> None:
    output = mock_ai.classify(CATALOG, "ACME_42", None).output
    assert output["summary"] == "ACME_42 (unknown, medium, retryable, as UNKNOWN_ERROR)"
    assert output["severity"] == Severity.MEDIUM


def test_similar_incidents_rank_by_shared_words_and_drop_the_unrelated() -> None:
    rows = [_past(1, "billing-sync", "OTHER"), _past(2, "billing-sync", "VENDOR_TIMEOUT")]
    rows.append(_past(3, "ledger", None))
    mine = mock_ai.tokens("billing-sync", "charge-card", "VENDOR_TIMEOUT", "stripe")
    similar = mock_ai.similar_incidents(mine, rows)
    assert [(s["incident_id"], s["score"]) for s in similar] == [("2", 1.0), ("1", 0.625)]
    decision = mock_ai.similarity_decision(mine, similar)
    assert (decision.confidence, decision.reasoning[:2]) == (1.0, "2 ")


def test_the_hypothesis_grows_surer_with_failures_and_a_similar_incident() -> None:
    alone = mock_ai.root_cause(CATALOG, _request("VENDOR_TIMEOUT"), [])
    assert alone.reasoning == ("Transient timeout failure at stripe; a retry is likely to succeed")
    assert alone.confidence == pytest.approx(0.53)
    similar = [{"incident_id": "p", "score": 1.0, "outcome": "resolved"}]
    many = mock_ai.root_cause(CATALOG, _request("AUTH_INVALID", failures=50), similar)
    assert many.reasoning.startswith("Persistent")
    assert many.confidence == pytest.approx(0.9)
    assert "similar incident p ended resolved" in many.output["evidence"]


def test_the_policy_comes_from_the_override_then_the_vendor_category_then_the_default() -> None:
    assert mock_ai.choose_policy(POLICIES, {"name": "quick"}, "stripe", "timeout")[0] == "quick"
    inline = {"max_attempts": 2, "initial_interval_s": 1, "multiplier": 1, "max_interval_s": 1}
    assert mock_ai.choose_policy(POLICIES, inline, None, "timeout")[0] == "workflow override"
    assert mock_ai.choose_policy(POLICIES, {}, None, "vendor_outage")[0] == "patient"
    assert mock_ai.choose_policy(POLICIES, {}, None, "nothing") == (
        POLICIES.retry.default,
        POLICIES.retry.policies[POLICIES.retry.default],
    )


def test_an_inline_approval_and_the_timeout_setting_travel_in_the_plan() -> None:
    override = {"max_attempts": 2, "initial_interval_s": 5, "multiplier": 1, "max_interval_s": 5}
    name, policy = mock_ai.choose_policy(
        POLICIES, {**override, "approval": "first"}, None, "timeout"
    )
    plan, summary = mock_ai.retry_plan(name, policy, 120)
    assert (plan.approval, plan.approval_timeout_s) == (ApprovalMode.FIRST, 120)
    assert summary.endswith(", approval first (times out after 120s)")
    _, ungated = mock_ai.choose_policy(POLICIES, override, None, "timeout")
    assert mock_ai.retry_plan(name, ungated)[0].approval == ApprovalMode.NEVER


def test_the_plan_summarises_its_policy_and_never_carries_the_workflow_webhook() -> None:
    plan, summary = mock_ai.retry_plan("quick", POLICIES.retry.policies["quick"])
    assert (plan.name, plan.max_attempts) == ("quick", 3)
    assert summary == "policy quick: up to 3 attempts, 1s × 2 ≤ 10s"
    steps = mock_ai.escalation_steps(POLICIES.escalation)
    assert [(s.name, s.webhook_url, s.severity, s.targets) for s in steps] == [
        ("on-call", None, PageSeverity.ERROR, ["webhook"]),
        ("team-lead", None, PageSeverity.CRITICAL, ["webhook"]),
    ]
