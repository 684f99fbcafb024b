"""Grouping explained: the fields a signature hashes and the rule that chose the error part."""

from __future__ import annotations

from rules.grouping import RULE_CODE, RULE_MESSAGE, explain
from rules.policy import load_policies
from rules.signature import compute_signature

CATALOG = load_policies().error_codes


def test_a_coded_failure_groups_on_its_canonical_code_and_names_an_alias() -> None:
    grouping = explain(
        CATALOG,
        workflow="billing-sync",
        step="charge-card",
        error_code="etimedout",
        error_message="socket 42 timed out",
        vendor="stripe",
    )
    assert grouping.rule == RULE_CODE
    assert grouping.fields == {
        "workflow": "billing-sync",
        "step": "charge-card",
        "error": "VENDOR_TIMEOUT",
        "vendor": "stripe",
    }
    assert "'etimedout' is an alias of it" in grouping.explanation
    assert grouping.signature == compute_signature(
        CATALOG,
        workflow="billing-sync",
        step="charge-card",
        error_code="VENDOR_TIMEOUT",
        error_message="anything else",
        vendor="stripe",
    )
    assert grouping.joined_because() == (
        "same signature (workflow=billing-sync, step=charge-card, error=VENDOR_TIMEOUT, "
        "vendor=stripe)"
    )


def test_an_uncoded_failure_groups_on_its_normalised_message() -> None:
    grouping = explain(
        CATALOG,
        workflow="billing-sync",
        step=None,
        error_code=None,
        error_message="Order 1234 failed at 2026-01-01T00:00:00Z",
        vendor=None,
    )
    assert grouping.rule == RULE_MESSAGE
    assert grouping.fields["error"] == "msg:order <n> failed at <ts>"
    assert "normalises to 'order <n> failed at <ts>'" in grouping.explanation
    assert "step=∅" in grouping.joined_because()
