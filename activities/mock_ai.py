"""The mock AI's reasoning: detector, root-cause hypothesis, similarity and the plan.

Pure and deterministic: the same inputs always give the same decision. `activities.analysis`
reads what these need from PostgreSQL and stores each `Decision` as an immutable row.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from rules.policy import ErrorCatalog, ErrorCode, FlapDamping, Policies, RetryPolicy
from rules.targets import EscalationPolicy, LifecycleEvent
from vocabulary import ApprovalMode
from workflows.activity_payloads import Classification, DecisionRequest
from workflows.incident_logic import is_flapping
from workflows.incident_state import EscalationStep, RetryPlan

DETECTOR = "mock-detector-v1"
RCA = "mock-rca-v1"
SIMILARITY = "mock-similarity-v1"
RULES = "rules-v1"
SIMILAR_SHOWN = 3


@dataclass(frozen=True)
class Decision:
    """One decision row: what was decided, by which model, why, and from what."""

    key: str  # unique per incident: a retried activity stores it once
    kind: str
    model: str
    reasoning: str
    confidence: float
    output: dict[str, Any]
    inputs: dict[str, Any]


def digest(document: dict[str, Any]) -> str:
    """Return the SHA-256 of a document's canonical JSON."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def tokens(*parts: str | None) -> set[str]:
    """Return the lower-case words of `parts` (what similarity compares)."""
    return {t for p in parts if p for t in re.split(r"[^a-z0-9]+", p.lower()) if t}


def jaccard(a: set[str], b: set[str]) -> float:
    """Return |a ∩ b| / |a ∪ b| (0 when both are empty)."""
    return len(a & b) / len(a | b) if a | b else 0.0


def _traits(entry: ErrorCode) -> str:
    retryable = "retryable" if entry.retryable else "not retryable"
    return f"{entry.category}, {entry.severity}, {retryable}"


def _recognise(
    catalog: ErrorCatalog, code: str | None, message: str | None
) -> tuple[str, str | None, float]:
    """The catalogue code, how it was found (None: not at all) and the confidence."""
    if code and catalog.canonical(code) in catalog.codes:
        known = catalog.canonical(code)
        exact = known == code.upper()
        return known, ("catalogue code" if exact else "alias"), (0.95 if exact else 0.9)
    if message and (matched := catalog.match_message(message)):
        return matched, "message pattern", 0.7
    return catalog.default_code, None, 0.3


def classify(catalog: ErrorCatalog, code: str | None, message: str | None) -> Decision:
    """Detector: category, severity and retryability from the code, else the message."""
    known, how, confidence = _recognise(catalog, code, message)
    entry = catalog.codes[known]
    traits = _traits(entry)
    if how is None:
        # Unknown to the catalogue: the incident keeps the code the client sent, with the
        # default entry's handling, so nobody has to guess what "UNKNOWN_ERROR" stood for.
        shown, summary = code or known, f"{code or known} ({traits}, as {known})"
        named = repr(code) if code else "this failure"
        reasoning = (
            f"Neither the catalogue nor a message pattern knows {named}: handled as "
            f"{known} ({traits}). {entry.description}"
        )
    else:
        shown, summary = known, f"{known} ({traits})"
        reasoning = f"Matched by {how}: {summary}. {entry.description}"
    result = Classification(
        shown, entry.category, entry.severity, entry.retryable, confidence, summary
    )
    return Decision(
        key="classify",
        kind="classification",
        model=DETECTOR,
        reasoning=reasoning,
        confidence=confidence,
        output=asdict(result),
        inputs={"code": code, "message": message},
    )


def similar_incidents(mine: set[str], past: Iterable[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    """The three past incidents most alike (Jaccard over workflow, step, code and vendor)."""

    def score(row: Mapping[Any, Any]) -> float:
        theirs = tokens(row["source_workflow"], row["step"], row["error_code"], row["vendor"])
        return jaccard(mine, theirs)

    scored = sorted(((score(r), r) for r in past), key=lambda pair: (-pair[0], str(pair[1]["id"])))[
        :SIMILAR_SHOWN
    ]
    return [
        {
            "incident_id": str(r["id"]),
            "score": round(score, 3),
            "title": r["title"],
            "outcome": r["status"],
            "attempts": r["attempts"],
        }
        for score, r in scored
        if score > 0
    ]


def similarity_decision(mine: set[str], similar: list[dict[str, Any]]) -> Decision:
    """The similarity row: how many past incidents look alike, and which."""
    return Decision(
        key="similarity",
        kind="similarity",
        model=SIMILARITY,
        reasoning=f"{len(similar)} similar past incidents "
        "(Jaccard over workflow, step, code and vendor)",
        confidence=similar[0]["score"] if similar else 0.0,
        output={"similar": similar},
        inputs={"tokens": sorted(mine)},
    )


def root_cause(
    catalog: ErrorCatalog, req: DecisionRequest, similar: list[dict[str, Any]]
) -> Decision:
    """A root-cause hypothesis from the failures, the error category and similar incidents."""
    entry = catalog.entry(req.error_code or "")
    who = req.vendor or req.source_workflow
    evidence = [
        f"{req.failure_count} failure event(s) with this signature",
        f"error category {entry.category}",
    ]
    confidence = 0.5 + min(req.failure_count, 10) * 0.03
    if similar:
        best = similar[0]
        evidence.append(f"similar incident {best['incident_id']} ended {best['outcome']}")
        confidence += 0.1 * best["score"]
    hypothesis = (
        f"Transient {entry.category} failure at {who}; a retry is likely to succeed"
        if entry.retryable
        else f"Persistent {entry.category} failure at {who}; retrying will not help"
    )
    return Decision(
        key="rca",
        kind="root_cause",
        model=RCA,
        reasoning=hypothesis,
        confidence=min(confidence, 0.95),
        output={"hypothesis": hypothesis, "evidence": evidence},
        inputs={
            "events": req.event_count,
            "failures": req.failure_count,
            "similar": [s["incident_id"] for s in similar],
        },
    )


def choose_policy(
    policies: Policies, override: dict[str, Any], vendor: str | None, category: str
) -> tuple[str, RetryPolicy]:
    """Pick the retry policy: workflow override, then vendor, then category, then default."""
    retry = policies.retry
    if "name" in override:
        return override["name"], retry.policies[override["name"]]
    if override:
        return "workflow override", RetryPolicy(**override)
    name = retry.by_vendor.get(vendor or "") or retry.by_category.get(category) or retry.default
    return name, retry.policies[name]


def escalation_steps(policy: EscalationPolicy) -> list[EscalationStep]:
    """The escalation ladder as the workflow carries it: timeouts and target types only."""
    # Credentials stay in the policy: the delivery activity reads each target when it sends.
    return [
        EscalationStep(
            level.name,
            None,
            level.ack_timeout_s,
            level.severity,
            targets=[target.type for target in level.targets],
            fallback=level.fallback.type if level.fallback else None,
            fallback_after=level.fallback_after,
        )
        for level in policy.levels
    ]


def notification_types(policy: EscalationPolicy) -> dict[str, list[str]]:
    """Per lifecycle event, the type of each notification target (an index names one)."""
    return {
        str(event): [target.type for target in policy.notification_targets(event)]
        for event in LifecycleEvent
        if policy.notification_targets(event)
    }


def retry_plan(
    name: str,
    policy: RetryPolicy,
    approval_timeout_s: float = 1800.0,
    flap: FlapDamping | None = None,
) -> tuple[RetryPlan, str]:
    """The chosen policy as the workflow carries it (flap: the file's unless its own), summed up."""
    plan = RetryPlan(
        name,
        policy.max_attempts,
        policy.initial_interval_s,
        policy.multiplier,
        policy.max_interval_s,
        policy.jitter,
        approval=policy.approval,
        approval_timeout_s=approval_timeout_s,
    )
    if damping := policy.flap or flap:
        plan.flap_reopens, plan.flap_within_s = damping.reopens, damping.within_s
        plan.flap_quiet_s = damping.quiet_s
    summary = (
        f"policy {name}: up to {policy.max_attempts} attempts, "
        f"{policy.initial_interval_s:g}s × {policy.multiplier:g} ≤ {policy.max_interval_s:g}s"
    )
    if threshold := policy.open_after:
        plan.open_after_count, plan.open_after_within_s = threshold.count, threshold.within_s
        summary += f", after {threshold.count} failures within {threshold.within_s:g} s"
    if policy.approval != ApprovalMode.NEVER:
        summary += f", approval {policy.approval} (times out after {approval_timeout_s:g}s)"
    return plan, summary


def flapping_summary(plan: RetryPlan) -> str:
    """The plan's flapping note ("" when not flapping): its re-opens within the window."""
    if not is_flapping(plan):
        return ""
    return f"; flapping: re-opened {plan.flap_count} times within {plan.flap_within_s:g} s"
