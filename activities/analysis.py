"""The mock AI: detector, root-cause analyser, similarity search, and the plan.

Deterministic by design: the same inputs always give the same decision, and every output is
stored as an immutable `decisions` row naming its `ai_model`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from models.base import sql_strings
from rules.policy import Policies, RetryPolicy
from vocabulary import IncidentStatus
from workflows.activity_payloads import Analysis, Classification, DecisionRequest, Plan
from workflows.incident_state import EscalationStep, RetryPlan

DETECTOR = "mock-detector-v1"
RCA = "mock-rca-v1"
SIMILARITY = "mock-similarity-v1"
RULES = "rules-v1"
# Incidents whose outcome is known, or known to need people: what similarity compares against.
PAST_OUTCOMES = (
    IncidentStatus.RESOLVED,
    IncidentStatus.KILLED,
    IncidentStatus.ESCALATED,
    IncidentStatus.ACKNOWLEDGED,
)
# The key is claimed in `decision_keys` by the same statement: `decisions` is partitioned by
# month, so only that table can stop a retry stored in a later month from recording it twice.
_INSERT_DECISION = text("""
WITH claimed AS (
    INSERT INTO decision_keys (incident_id, decision_key, decision_id)
    -- Only for an incident of this tenant: a forged request stores nothing and fails nothing.
    SELECT CAST(:incident_id AS uuid), :decision_key, gen_random_uuid()
    WHERE EXISTS (SELECT 1 FROM incidents
                  WHERE id = CAST(:incident_id AS uuid) AND tenant_id = CAST(:tenant_id AS uuid))
    ON CONFLICT (incident_id, decision_key) DO NOTHING
    RETURNING decision_id
)
INSERT INTO decisions (id, tenant_id, incident_id, decision_key, decision_type, reasoning,
                       confidence, ai_model, input_digest, output)
SELECT decision_id, :tenant_id, :incident_id, :decision_key, :decision_type, :reasoning,
       :confidence, :ai_model, :input_digest, CAST(:output AS jsonb)
FROM claimed
""")
_PAST_INCIDENTS = text(f"""
SELECT id, title, source_workflow, step, error_code, vendor, status, attempts
FROM incidents
WHERE tenant_id = :tenant_id AND id <> :incident_id
  AND status IN ({sql_strings(PAST_OUTCOMES)})
ORDER BY last_seen_at DESC LIMIT 200
""")
# The message of the failure being classified lives in PostgreSQL, not in workflow history.
_MESSAGE = text("""
SELECT error_message FROM events WHERE tenant_id = :tenant_id AND id = CAST(:event_id AS uuid)
""")
_WORKFLOW = text("""
SELECT callback_url, retry_policy FROM workflows
WHERE tenant_id = :tenant_id AND name = :name
""")


def digest(document: dict[str, Any]) -> str:
    """Return the SHA-256 of a document's canonical JSON."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def _tokens(*parts: str | None) -> set[str]:
    return {t for p in parts if p for t in re.split(r"[^a-z0-9]+", p.lower()) if t}


def jaccard(a: set[str], b: set[str]) -> float:
    """Return |a ∩ b| / |a ∪ b| (0 when both are empty)."""
    return len(a & b) / len(a | b) if a | b else 0.0


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


class AnalysisActivities:
    """Classification, root-cause analysis, similarity and planning, each a decision row."""

    def __init__(self, *, engine: AsyncEngine, policies: Policies) -> None:
        self._engine = engine
        self._policies = policies

    async def _decide(
        self,
        req: DecisionRequest,
        *,
        key: str,
        kind: str,
        model: str,
        reasoning: str,
        confidence: float,
        output: dict[str, Any],
        inputs: dict[str, Any],
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                _INSERT_DECISION,
                {
                    "tenant_id": req.tenant_id,
                    "incident_id": req.incident_id,
                    "decision_key": key,
                    "decision_type": kind,
                    "reasoning": reasoning,
                    "confidence": round(confidence, 3),
                    "ai_model": model,
                    "input_digest": digest(inputs),
                    "output": json.dumps(output, default=str),
                },
            )

    @activity.defn(name="classify_incident")
    async def classify(self, req: DecisionRequest) -> Classification:
        """Detector: category, severity and retryability from the code, else the message."""
        catalog = self._policies.error_codes
        message = req.error_message or await self._message(req)
        code, how, confidence = catalog.default_code, None, 0.3
        if req.error_code and catalog.canonical(req.error_code) in catalog.codes:
            code = catalog.canonical(req.error_code)
            exact = code == req.error_code.upper()
            how, confidence = ("catalogue code" if exact else "alias"), (0.95 if exact else 0.9)
        elif message and (matched := catalog.match_message(message)):
            code, how, confidence = matched, "message pattern", 0.7
        entry = catalog.codes[code]
        traits = f"{entry.category}, {entry.severity}, " + (
            "retryable" if entry.retryable else "not retryable"
        )
        if how is None:
            # Unknown to the catalogue: the incident keeps the code the client sent, with the
            # default entry's handling, so nobody has to guess what "UNKNOWN_ERROR" stood for.
            shown = req.error_code or code
            summary = f"{shown} ({traits}, as {code})"
            reasoning = (
                f"Neither the catalogue nor a message pattern knows "
                f"{repr(req.error_code) if req.error_code else 'this failure'}: handled as "
                f"{code} ({traits}). {entry.description}"
            )
        else:
            shown, summary = code, f"{code} ({traits})"
            reasoning = f"Matched by {how}: {summary}. {entry.description}"
        result = Classification(
            shown, entry.category, entry.severity, entry.retryable, confidence, summary
        )
        await self._decide(
            req,
            key="classify",
            kind="classification",
            model=DETECTOR,
            reasoning=reasoning,
            confidence=confidence,
            output=asdict(result),
            inputs={"code": req.error_code, "message": message},
        )
        return result

    async def _message(self, req: DecisionRequest) -> str | None:
        if not req.event_id:
            return None
        params = {"tenant_id": uuid.UUID(req.tenant_id), "event_id": req.event_id}
        async with self._engine.connect() as conn:
            message = (await conn.execute(_MESSAGE, params)).scalar_one_or_none()
        return None if message is None else str(message)

    @activity.defn(name="analyse_incident")
    async def analyse(self, req: DecisionRequest) -> Analysis:
        """Root-cause hypothesis from the events and history, plus top-3 similar incidents."""
        mine = _tokens(req.source_workflow, req.step, req.error_code, req.vendor)
        async with self._engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        _PAST_INCIDENTS,
                        {
                            "tenant_id": uuid.UUID(req.tenant_id),
                            "incident_id": uuid.UUID(req.incident_id),
                        },
                    )
                )
                .mappings()
                .all()
            )
        scored = sorted(
            (
                (
                    jaccard(
                        mine, _tokens(r["source_workflow"], r["step"], r["error_code"], r["vendor"])
                    ),
                    r,
                )
                for r in rows
            ),
            key=lambda pair: (-pair[0], str(pair[1]["id"])),
        )[:3]
        similar = [
            {
                "incident_id": str(r["id"]),
                "score": round(s, 3),
                "title": r["title"],
                "outcome": r["status"],
                "attempts": r["attempts"],
            }
            for s, r in scored
            if s > 0
        ]
        await self._decide(
            req,
            key="similarity",
            kind="similarity",
            model=SIMILARITY,
            reasoning=f"{len(similar)} similar past incidents "
            "(Jaccard over workflow, step, code and vendor)",
            confidence=similar[0]["score"] if similar else 0.0,
            output={"similar": similar},
            inputs={"tokens": sorted(mine)},
        )
        hypothesis, confidence, evidence = self._hypothesis(req, similar)
        await self._decide(
            req,
            key="rca",
            kind="root_cause",
            model=RCA,
            reasoning=hypothesis,
            confidence=confidence,
            output={"hypothesis": hypothesis, "evidence": evidence},
            inputs={
                "events": req.event_count,
                "failures": req.failure_count,
                "similar": [s["incident_id"] for s in similar],
            },
        )
        return Analysis(
            hypothesis,
            confidence,
            [s["incident_id"] for s in similar],
            f"{hypothesis} (confidence {confidence:.2f})",
        )

    def _hypothesis(
        self, req: DecisionRequest, similar: list[dict[str, Any]]
    ) -> tuple[str, float, list[str]]:
        entry = self._policies.error_codes.entry(req.error_code or "")
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
        transient = entry.retryable
        hypothesis = (
            f"Transient {entry.category} failure at {who}; a retry is likely to succeed"
            if transient
            else f"Persistent {entry.category} failure at {who}; retrying will not help"
        )
        return hypothesis, min(confidence, 0.95), evidence

    @activity.defn(name="plan_remediation")
    async def plan(self, req: DecisionRequest) -> Plan:
        """Choose the retry policy, the callback and the escalation ladder."""
        async with self._engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        _WORKFLOW,
                        {
                            "tenant_id": uuid.UUID(req.tenant_id),
                            "name": req.source_workflow,
                        },
                    )
                )
                .mappings()
                .first()
            )
        override = dict(row["retry_policy"]) if row else {}
        category = self._policies.error_codes.entry(req.error_code or "").category
        name, policy = choose_policy(self._policies, override, req.vendor, category)
        vendor = self._policies.vendors.for_vendor(req.vendor)
        escalation = [
            EscalationStep(
                level.name,
                # The workflow's own webhook is a credential: the page reads it, decrypted,
                # from the registry when it is sent; the plan names only a policy's own URL.
                None if level.webhook == "workflow" else level.webhook,
                level.ack_timeout_s,
                level.severity,
            )
            for level in self._policies.escalation.levels
        ]
        retry = RetryPlan(
            name,
            policy.max_attempts,
            policy.initial_interval_s,
            policy.multiplier,
            policy.max_interval_s,
            policy.jitter,
        )
        summary = (
            f"policy {name}: up to {policy.max_attempts} attempts, "
            f"{policy.initial_interval_s:g}s × {policy.multiplier:g} ≤ "
            f"{policy.max_interval_s:g}s"
        )
        await self._decide(
            req,
            key="plan",
            kind="plan",
            model=RULES,
            reasoning=summary,
            confidence=1.0,
            output={"policy": asdict(retry), "escalation_levels": len(escalation)},
            inputs={"override": override, "vendor": req.vendor, "category": category},
        )
        return Plan(
            retry, row["callback_url"] if row else "", vendor.call_timeout_s, escalation, summary
        )
