"""The analysis activities: classify, analyse and plan an incident, each a decision row.

The reasoning is the mock AI's (`activities.mock_ai`, deterministic: the same inputs always
give the same decision); these activities read its inputs from PostgreSQL and store every
output as an immutable `decisions` row naming its `ai_model`. `assess` does all three on one
connection, its four rows in one statement, for the opening step (activities/opening.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity

from activities import mock_ai
from activities.responder_sender import policy_of_row
from models.base import sql_strings
from models.secret_box import SecretBox
from rules.policy import Policies
from rules.targets import EscalationPolicy
from vocabulary import IncidentStatus
from workflows.activity_payloads import Analysis, Classification, DecisionRequest, Plan
from workflows.incident_state import RetryPlan
from workflows.opening_payloads import Assessment

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
# The same for several rows at once (in order: each a microsecond after the one before, so a
# listing by time shows them as the separate steps stored them).
_INSERT_DECISIONS = text("""
WITH input AS (
    SELECT item.doc ->> 'decision_key' AS decision_key, item.doc, item.ord
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS item(doc, ord)
), claimed AS (
    INSERT INTO decision_keys (incident_id, decision_key, decision_id)
    SELECT CAST(:incident_id AS uuid), input.decision_key, gen_random_uuid() FROM input
    WHERE EXISTS (SELECT 1 FROM incidents
                  WHERE id = CAST(:incident_id AS uuid) AND tenant_id = CAST(:tenant_id AS uuid))
    ON CONFLICT (incident_id, decision_key) DO NOTHING
    RETURNING decision_key, decision_id
)
INSERT INTO decisions (id, tenant_id, incident_id, decision_key, decision_type, reasoning,
                       confidence, ai_model, input_digest, output, created_at)
SELECT claimed.decision_id, CAST(:tenant_id AS uuid), CAST(:incident_id AS uuid),
       input.decision_key, input.doc ->> 'decision_type', input.doc ->> 'reasoning',
       CAST(input.doc ->> 'confidence' AS double precision), input.doc ->> 'ai_model',
       input.doc ->> 'input_digest', input.doc -> 'output',
       statement_timestamp() + input.ord * interval '1 microsecond'
FROM claimed JOIN input USING (decision_key)
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
SELECT w.callback_url, w.retry_policy, w.escalation_policy, n.policy_encrypted AS named_policy,
       t.escalation_policy AS tenant_policy
FROM workflows w JOIN tenants t ON t.id = w.tenant_id
LEFT JOIN escalation_policies n ON n.tenant_id = w.tenant_id AND n.name = w.escalation_policy_name
WHERE w.tenant_id = :tenant_id AND w.name = :name
""")


# Flap damping: earlier incidents of this one's tenant, workflow and signature that closed
# `resolved` within the window before it opened, and whether one of those closed in the window
# had said `flapping` already (the same flap episode: not announced again). Served by
# ix_incidents_tenant_id_signature_closed_at; transitions by their incident index.
_FLAPS = text(f"""
WITH me AS (
    SELECT tenant_id, signature, source_workflow, created_at FROM incidents
    WHERE id = CAST(:incident_id AS uuid) AND tenant_id = CAST(:tenant_id AS uuid)
)
SELECT count(*) FILTER (WHERE i.status = '{IncidentStatus.RESOLVED}') AS reopens,
       coalesce(bool_or(EXISTS (
           SELECT 1 FROM incident_transitions t
           WHERE t.tenant_id = i.tenant_id AND t.incident_id = i.id
             AND t.status = '{IncidentStatus.FLAPPING}')), false) AS announced
FROM me JOIN incidents i
  ON i.tenant_id = me.tenant_id AND i.signature = me.signature
 AND i.source_workflow = me.source_workflow
WHERE i.closed_at >= me.created_at - make_interval(secs => :within_s)
  AND i.closed_at <= me.created_at AND i.id <> CAST(:incident_id AS uuid)
""")


class AnalysisActivities:
    """Classification, root-cause analysis, similarity and planning, each a decision row."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        policies: Policies,
        box: SecretBox | None = None,
        approval_timeout_s: float = 1800.0,
    ) -> None:
        self._engine = engine
        self._policies = policies
        self._box = box
        self._approval_timeout_s = approval_timeout_s

    async def _store(self, req: DecisionRequest, decision: mock_ai.Decision) -> None:
        """Store one decision row, once per incident and key."""
        params = {
            "tenant_id": req.tenant_id,
            "incident_id": req.incident_id,
            **_decision_row(decision),
            "output": json.dumps(decision.output, default=str),
        }
        async with self._engine.begin() as conn:
            await conn.execute(_INSERT_DECISION, params)

    @activity.defn(name="classify_incident")
    async def classify(self, req: DecisionRequest) -> Classification:
        """Detector: category, severity and retryability from the code, else the message."""
        message = req.error_message
        if not message and req.event_id:
            async with self._engine.connect() as conn:
                message = await self._message(conn, req)
        decision, verdict = self._classification(req, message)
        await self._store(req, decision)
        return verdict

    @activity.defn(name="analyse_incident")
    async def analyse(self, req: DecisionRequest) -> Analysis:
        """Root-cause hypothesis from the events and history, plus top-3 similar incidents."""
        async with self._engine.connect() as conn:
            past = await self._past(conn, req)
        (similarity, cause), analysis = self._analysis(req, past)
        await self._store(req, similarity)
        await self._store(req, cause)
        return analysis

    @activity.defn(name="plan_remediation")
    async def plan(self, req: DecisionRequest) -> Plan:
        """Choose the retry policy, the callback and the escalation ladder."""
        async with self._engine.connect() as conn:
            row = await self._registration(conn, req)
            decision, plan = await self._plan(conn, req, row)
        await self._store(req, decision)
        return plan

    async def assess(self, conn: AsyncConnection, req: DecisionRequest) -> Assessment:
        """Classify, analyse and plan on `conn`: three reads, then one write of four rows."""
        message = req.error_message or await self._message(conn, req)
        past = await self._past(conn, req)
        row = await self._registration(conn, req)
        classified, verdict = self._classification(req, message)
        (similarity, cause), analysis = self._analysis(req, past)
        planned, plan = await self._plan(conn, req, row)
        rows = [_decision_row(d) for d in (classified, similarity, cause, planned)]
        params = {
            "tenant_id": req.tenant_id,
            "incident_id": req.incident_id,
            "rows": json.dumps(rows, default=str),
        }
        await conn.execute(_INSERT_DECISIONS, params)
        return Assessment(verdict, analysis, plan)

    def _classification(
        self, req: DecisionRequest, message: str | None
    ) -> tuple[mock_ai.Decision, Classification]:
        decision = mock_ai.classify(self._policies.error_codes, req.error_code, message)
        return decision, Classification(**decision.output)

    def _analysis(
        self, req: DecisionRequest, past: Sequence[Mapping[Any, Any]]
    ) -> tuple[tuple[mock_ai.Decision, mock_ai.Decision], Analysis]:
        mine = mock_ai.tokens(req.source_workflow, req.step, req.error_code, req.vendor)
        similar = mock_ai.similar_incidents(mine, past)
        cause = mock_ai.root_cause(self._policies.error_codes, req, similar)
        analysis = Analysis(
            cause.reasoning,
            cause.confidence,
            [s["incident_id"] for s in similar],
            f"{cause.reasoning} (confidence {cause.confidence:.2f})",
        )
        return (mock_ai.similarity_decision(mine, similar), cause), analysis

    async def _plan(
        self, conn: AsyncConnection, req: DecisionRequest, row: Any
    ) -> tuple[mock_ai.Decision, Plan]:
        override = dict(row["retry_policy"]) if row else {}
        category = self._policies.error_codes.entry(req.error_code or "").category
        name, policy = mock_ai.choose_policy(self._policies, override, req.vendor, category)
        flap = self._policies.retry.flap
        retry, summary = mock_ai.retry_plan(name, policy, self._approval_timeout_s, flap)
        await self._count_flaps(conn, req, retry)
        summary += mock_ai.flapping_summary(retry)
        responders = self._escalation_policy(req, row)
        escalation = mock_ai.escalation_steps(responders)
        decision = mock_ai.Decision(
            key="plan",
            kind="plan",
            model=mock_ai.RULES,
            reasoning=summary,
            confidence=1.0,
            output={"policy": asdict(retry), "escalation_levels": len(escalation)},
            inputs={"override": override, "vendor": req.vendor, "category": category},
        )
        timeout_s = self._policies.vendors.for_vendor(req.vendor).call_timeout_s
        callback_url = row["callback_url"] if row else ""
        notifications = mock_ai.notification_types(responders)
        plan = Plan(retry, callback_url, timeout_s, escalation, summary, notifications)
        return decision, plan

    async def _count_flaps(
        self, conn: AsyncConnection, req: DecisionRequest, retry: RetryPlan
    ) -> None:
        """Count the signature's recent resolved re-opens into the plan (damping on only)."""
        if retry.flap_reopens <= 0:
            return
        params = {
            "tenant_id": req.tenant_id,
            "incident_id": req.incident_id,
            "within_s": retry.flap_within_s,
        }
        row = (await conn.execute(_FLAPS, params)).one()
        retry.flap_count, retry.flap_announced = int(row.reopens), bool(row.announced)

    def _escalation_policy(self, req: DecisionRequest, row: Any) -> EscalationPolicy:
        """The workflow's levels, its named policy's, the tenant's or the default; every rule."""
        if row is None or self._box is None:
            return self._policies.escalation
        return policy_of_row(self._box, req.tenant_id, row, self._policies.escalation)

    async def _message(self, conn: AsyncConnection, req: DecisionRequest) -> str | None:
        if not req.event_id:
            return None
        params = {"tenant_id": uuid.UUID(req.tenant_id), "event_id": req.event_id}
        message = (await conn.execute(_MESSAGE, params)).scalar_one_or_none()
        return None if message is None else str(message)

    async def _past(
        self, conn: AsyncConnection, req: DecisionRequest
    ) -> Sequence[Mapping[Any, Any]]:
        params = {"tenant_id": uuid.UUID(req.tenant_id), "incident_id": uuid.UUID(req.incident_id)}
        return (await conn.execute(_PAST_INCIDENTS, params)).mappings().all()

    async def _registration(self, conn: AsyncConnection, req: DecisionRequest) -> Any:
        """The workflow's registered callback and retry policy (None when unregistered)."""
        params = {"tenant_id": uuid.UUID(req.tenant_id), "name": req.source_workflow}
        return (await conn.execute(_WORKFLOW, params)).mappings().first()


def _decision_row(decision: mock_ai.Decision) -> dict[str, Any]:
    """A decision's columns (its output still a document: the caller encodes it)."""
    return {
        "decision_key": decision.key,
        "decision_type": decision.kind,
        "reasoning": decision.reasoning,
        "confidence": round(decision.confidence, 3),
        "ai_model": decision.model,
        "input_digest": mock_ai.digest(decision.inputs),
        "output": decision.output,
    }
