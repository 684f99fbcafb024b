"""Escalation policies as operators see them, and test messages to one configured target."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.responder_sender import ResponderSender, delivered, describe, open_policy
from activities.vendor_formats import RESOLVE, TRIGGER, IncidentFacts
from api.errors import AwfdrsError, Conflict, NotFound
from api.services.workflows import seal_escalation_policy
from models.registry import NamedEscalationPolicy, Workflow
from models.secret_box import SecretBox
from models.stored_secrets import NAMED_ESCALATION_POLICIES, TENANT_ESCALATION_POLICIES
from models.tenant import Tenant
from rules.egress import EgressGuard
from rules.targets import EscalationPolicy, Target, TargetType, masked_policy

DEFAULT_POLICY = "default"
TENANT_POLICY = "tenant"
TEST_EVENT = "test"


class UnknownTarget(AwfdrsError):
    """The named policy has no target at that level and index."""

    status = 422
    title = "Validation failed"


async def policy_rows(session: AsyncSession, tenant_id: uuid.UUID) -> list[tuple[str, str | None]]:
    """Each workflow of the tenant that has its own policy: (name, sealed policy)."""
    rows = await session.exec(
        select(Workflow.name, Workflow.escalation_policy)
        .where(Workflow.tenant_id == tenant_id, col(Workflow.escalation_policy).is_not(None))
        .order_by(col(Workflow.name))
    )
    return [(name, sealed) for name, sealed in rows.all()]


async def named_rows(session: AsyncSession, tenant_id: uuid.UUID) -> list[NamedEscalationPolicy]:
    """The tenant's named policies, by name."""
    rows = await session.exec(
        select(NamedEscalationPolicy)
        .where(NamedEscalationPolicy.tenant_id == tenant_id)
        .order_by(col(NamedEscalationPolicy.name))
    )
    return list(rows.all())


def summary(name: str, kind: str, policy: EscalationPolicy) -> dict[str, Any]:
    """One line of `escalation-policies list`."""
    return {
        "name": name,
        "kind": kind,
        "levels": len(policy.levels),
        "targets": ", ".join(
            f"L{n}:{'+'.join(t.type for t in level.targets)}"
            for n, level in enumerate(policy.levels, 1)
        ),
        "notify_rules": len(policy.notify),
    }


async def all_policies(
    session: AsyncSession, box: SecretBox, default: EscalationPolicy, tenant_id: uuid.UUID
) -> list[tuple[str, str, EscalationPolicy]]:
    """(name, kind, policy): `default`, the tenant's, its named ones, then workflows' own."""
    found = [(DEFAULT_POLICY, "default", default)]
    tenant = await session.get(Tenant, tenant_id)
    sealed_tenant = tenant.escalation_policy if tenant else None
    own = open_policy(box, str(tenant_id), sealed_tenant, TENANT_ESCALATION_POLICIES)
    found += [(TENANT_POLICY, "tenant", own)] if own is not None else []
    for row in await named_rows(session, tenant_id):
        named = open_policy(box, str(tenant_id), row.policy_encrypted, NAMED_ESCALATION_POLICIES)
        found += [(row.name, "named", named)] if named is not None else []
    for name, sealed in await policy_rows(session, tenant_id):
        policy = open_policy(box, str(tenant_id), sealed)
        found += [(name, "workflow", policy)] if policy is not None else []
    return found


async def find_policy(
    session: AsyncSession, box: SecretBox, default: EscalationPolicy, tenant_id: uuid.UUID,
    name: str,
) -> EscalationPolicy:  # fmt: skip
    """The policy called `name`: `default`, `tenant`, a named one, else a workflow's own."""
    for found, _, policy in await all_policies(session, box, default, tenant_id):
        if found == name:
            return policy
    raise NotFound(
        f"escalation policy {name!r} not found (`default`, `tenant` or a workflow's name)"
    )


async def put_named_policy(
    session: AsyncSession,
    box: SecretBox,
    guard: EgressGuard,
    tenant_id: uuid.UUID,
    name: str,
    policy: EscalationPolicy,
) -> None:
    """Create or replace the tenant's policy called `name` after the egress checks."""
    if name in (DEFAULT_POLICY, TENANT_POLICY):
        raise UnknownTarget(
            f"name: {name!r} is reserved",
            errors=[{"loc": ["path", "name"], "msg": "reserved", "type": "value_error"}],
        )
    sealed = await seal_escalation_policy(
        box, policy, guard=guard, tenant_id=tenant_id, column=NAMED_ESCALATION_POLICIES
    )
    assert sealed is not None
    row = next((r for r in await named_rows(session, tenant_id) if r.name == name), None)
    if row is None:
        row = NamedEscalationPolicy(tenant_id=tenant_id, name=name, policy_encrypted=sealed)
        session.add(row)
    row.policy_encrypted, row.updated_at = sealed, datetime.now(UTC)
    await session.commit()


async def delete_named_policy(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> None:
    """Remove a named policy no workflow refers to (409 naming those that do)."""
    row = next((r for r in await named_rows(session, tenant_id) if r.name == name), None)
    if row is None:
        raise NotFound(f"escalation policy {name!r} not found")
    users = await session.exec(
        select(Workflow.name).where(
            Workflow.tenant_id == tenant_id, Workflow.escalation_policy_name == name
        )
    )
    if using := sorted(users.all()):
        raise Conflict(f"escalation policy {name!r} is used by: {', '.join(using)}")
    await session.delete(row)
    await session.commit()


async def set_tenant_policy(
    session: AsyncSession,
    box: SecretBox,
    guard: EgressGuard,
    tenant_id: uuid.UUID,
    policy: EscalationPolicy | None,
) -> None:
    """Store (or, with None, remove) the tenant's own policy after the egress checks."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    tenant.escalation_policy = await seal_escalation_policy(
        box, policy, guard=guard, tenant_id=tenant_id, column=TENANT_ESCALATION_POLICIES
    )
    await session.commit()


def shown(name: str, policy: EscalationPolicy) -> dict[str, Any]:
    """A whole policy, credentials masked."""
    return {"name": name, **masked_policy(policy)}


def pick(policy: EscalationPolicy, level: int, index: int) -> Target:
    """Level ≥ 1: a level's target (index -1: its fallback); level 0: notification targets."""
    if level == 0:
        targets = [t for rule in policy.notify for t in rule.targets]
        found = targets[index] if 0 <= index < len(targets) else None
    elif 1 <= level <= len(policy.levels):
        step = policy.levels[level - 1]
        found = step.fallback if index == -1 else _at(step.targets, index)
    else:
        found = None
    if found is None:
        raise UnknownTarget(
            f"target: no target at level {level}, index {index}",
            errors=[{"loc": ["body", "index"], "msg": "no such target", "type": "value_error"}],
        )
    return found


def _at(targets: tuple[Target, ...], index: int) -> Target | None:
    return targets[index] if 0 <= index < len(targets) else None


async def send_test(
    sender: ResponderSender, tenant_id: uuid.UUID, target: Target, *, webhook_url: str | None
) -> list[dict[str, Any]]:
    """Send a test message; a paging service gets a trigger and its resolve (one test alert)."""
    test_id = f"awfdrs-test-{uuid.uuid4()}"
    facts = IncidentFacts(
        incident_id=test_id,
        summary="AWFDRS test message: this target is reachable",
        source_workflow="awfdrs-notify-test",
        severity="info",
        level=0,
        level_name="test",
        attempts=0,
        event_count=0,
    )
    paging = target.type in (TargetType.PAGERDUTY, TargetType.OPSGENIE)
    events = [TRIGGER, RESOLVE] if paging else [TEST_EVENT]
    sent = []
    for event in events:
        result = await sender.send(
            str(tenant_id), target, event, facts, message_id=f"{test_id}:{event}",
            webhook_url=webhook_url,
        )  # fmt: skip
        sent.append(
            {
                "event": event,
                "delivered": delivered(result),
                "http_status": result.status,
                "detail": describe(result),
            }
        )
    return sent


def outbound_client() -> httpx.AsyncClient:
    """A client like the worker's: no proxies from the environment, no redirects."""
    return httpx.AsyncClient(follow_redirects=False, transport=httpx.AsyncHTTPTransport())
