"""The workflow registry: validation of callback targets and retry policies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import AwfdrsError, Conflict, NotFound
from models.registry import NamedEscalationPolicy, Workflow
from models.schemas.workflows import (
    InlineRetryPolicy,
    RetryPolicyRef,
    WorkflowCreate,
    WorkflowOut,
    WorkflowUpdate,
)
from models.secret_box import SecretBox, mask_url
from models.stored_secrets import ESCALATION_POLICIES, WEBHOOK_URLS, SealedColumn
from rules.egress import EgressGuard, EgressRefused
from rules.policy import RetryPolicies
from rules.targets import (
    WORKFLOW_WEBHOOK,
    EscalationPolicy,
    OpsgenieTarget,
    Target,
    masked_policy,
)


class InvalidRegistration(AwfdrsError):
    """A registry field is well-formed but not acceptable (host, policy name)."""

    status = 422
    title = "Validation failed"


def _refuse(field: str, message: str) -> InvalidRegistration:
    return InvalidRegistration(
        f"{field}: {message}",
        errors=[{"loc": ["body", field], "msg": message, "type": "url_invalid"}],
    )


async def check_target_url(
    field: str, url: str, *, guard: EgressGuard, tenant_id: uuid.UUID
) -> str:
    """Accept a URL only if the egress guard would call it now: the call-time check, early."""
    try:
        await guard.vet(url, tenant_id=tenant_id)
    except EgressRefused as refused:
        raise _refuse(field, refused.reason) from None
    return url


def policy_to_json(policy: RetryPolicyRef | None, policies: RetryPolicies) -> dict[str, Any]:
    """Validate a policy reference and return its stored JSON form."""
    if policy is None:
        return {}
    if isinstance(policy, str):
        if policy not in policies.policies:
            names = ", ".join(sorted(policies.policies))
            raise InvalidRegistration(f"retry_policy: unknown policy {policy!r} (one of {names})")
        return {"name": policy}
    if policy.max_interval_s < policy.initial_interval_s:
        raise InvalidRegistration("retry_policy: max_interval_s must be ≥ initial_interval_s")
    return policy.model_dump(exclude_none=True)  # no `open_after: null` in stored policies


def seal_webhook_url(box: SecretBox, tenant_id: uuid.UUID, url: str | None) -> str | None:
    """Return the escalation webhook URL as stored: sealed, since it may embed a token."""
    return None if url is None else box.encrypt(url, context=WEBHOOK_URLS.context(tenant_id))


def target_urls(policy: EscalationPolicy) -> list[tuple[str, str]]:
    """Every URL a policy would call, each with the field path that names it."""
    found: list[tuple[str, str]] = []
    for n, level in enumerate(policy.levels):
        found += [(f"levels.{n}.targets.{i}", t) for i, t in _urls(level.targets)]
        if level.fallback is not None:
            found += [(f"levels.{n}.fallback", t) for _, t in _urls((level.fallback,))]
    for n, rule in enumerate(policy.notify):
        found += [(f"notify.{n}.targets.{i}", t) for i, t in _urls(rule.targets)]
    return [(f"escalation_policy.{where}", url) for where, url in found]


def _urls(targets: tuple[Target, ...]) -> list[tuple[int, str]]:
    urls = []
    for index, target in enumerate(targets):
        if isinstance(target, OpsgenieTarget):
            urls.append((index, f"{target.base_url}/v2/alerts"))
        elif target.url != WORKFLOW_WEBHOOK:
            urls.append((index, target.url))
    return urls


async def seal_escalation_policy(
    box: SecretBox,
    policy: EscalationPolicy | None,
    *,
    guard: EgressGuard,
    tenant_id: uuid.UUID,
    column: SealedColumn = ESCALATION_POLICIES,
) -> str | None:
    """Check every target URL with the egress guard; return the policy sealed for storage."""
    if policy is None:
        return None
    for field, url in target_urls(policy):
        await check_target_url(field, url, guard=guard, tenant_id=tenant_id)
    plain = policy.model_dump_json()
    return box.encrypt(plain, context=column.context(tenant_id))


async def store_escalation_policy(
    session: AsyncSession,
    row: Workflow,
    policy: EscalationPolicy | str | None,
    *,
    box: SecretBox,
    guard: EgressGuard,
) -> None:
    """Set the workflow's own policy, or the name of a named one (which must exist)."""
    name = policy if isinstance(policy, str) else None
    if name is not None and not await _named_policy_exists(session, row.tenant_id, name):
        raise _refuse("escalation_policy", f"no escalation policy named {name!r}")
    inline = None if isinstance(policy, str) else policy
    row.escalation_policy_name = name
    row.escalation_policy = await seal_escalation_policy(
        box, inline, guard=guard, tenant_id=row.tenant_id
    )


async def _named_policy_exists(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> bool:
    found = await session.exec(
        select(NamedEscalationPolicy.id).where(
            NamedEscalationPolicy.tenant_id == tenant_id, NamedEscalationPolicy.name == name
        )
    )
    return found.first() is not None


def shown_escalation_policy(row: Workflow, box: SecretBox) -> dict[str, Any] | str | None:
    """The workflow's policy with every credential masked, or the named policy's name."""
    if row.escalation_policy_name:
        return row.escalation_policy_name
    if not row.escalation_policy:
        return None
    context = ESCALATION_POLICIES.context(row.tenant_id)
    plain = box.decrypt(row.escalation_policy, context=context)
    return masked_policy(EscalationPolicy.model_validate_json(plain))


def workflow_out(row: Workflow, *, box: SecretBox) -> WorkflowOut:
    """Render a registry row, with its policy as the client sent it and its webhook masked."""
    stored = row.retry_policy
    policy: RetryPolicyRef | None = (
        stored["name"] if "name" in stored else InlineRetryPolicy(**stored) if stored else None
    )
    sealed = row.escalation_webhook_url
    webhook = sealed and mask_url(box.decrypt(sealed, context=WEBHOOK_URLS.context(row.tenant_id)))
    return WorkflowOut(
        **row.model_dump(
            exclude={
                "retry_policy",
                "escalation_webhook_url",
                "escalation_policy",
                "escalation_policy_name",
            }
        ),
        escalation_webhook_url=webhook,
        retry_policy=policy,
        escalation_policy=shown_escalation_policy(row, box),
    )


async def create_workflow(
    *,
    session: AsyncSession,
    tenant_id: uuid.UUID,
    body: WorkflowCreate,
    guard: EgressGuard,
    policies: RetryPolicies,
    box: SecretBox,
) -> Workflow:
    """Register a workflow; 409 when the name is taken."""
    await check_target_url("callback_url", body.callback_url, guard=guard, tenant_id=tenant_id)
    if body.escalation_webhook_url:
        await check_target_url(
            "escalation_webhook_url", body.escalation_webhook_url, guard=guard, tenant_id=tenant_id
        )
    row = Workflow(
        tenant_id=tenant_id,
        name=body.name,
        description=body.description,
        callback_url=body.callback_url,
        escalation_webhook_url=seal_webhook_url(box, tenant_id, body.escalation_webhook_url),
        retry_policy=policy_to_json(body.retry_policy, policies),
        active=body.active,
        mode=body.mode,
    )
    await store_escalation_policy(session, row, body.escalation_policy, box=box, guard=guard)
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        raise Conflict(f"workflow {body.name!r} is already registered") from None
    return row


async def get_workflow_or_raise(
    *, session: AsyncSession, tenant_id: uuid.UUID, name: str
) -> Workflow:
    """Return the tenant's workflow called `name`, or raise NotFound."""
    result = await session.exec(
        select(Workflow).where(Workflow.tenant_id == tenant_id, Workflow.name == name)
    )
    row = result.first()
    if row is None:
        raise NotFound(f"workflow {name!r} not found")
    return row


async def update_workflow(
    *,
    session: AsyncSession,
    tenant_id: uuid.UUID,
    name: str,
    body: WorkflowUpdate,
    guard: EgressGuard,
    policies: RetryPolicies,
    box: SecretBox,
) -> Workflow:
    """Apply a partial update after validating the changed fields."""
    row = await get_workflow_or_raise(session=session, tenant_id=tenant_id, name=name)
    changes = body.model_dump(exclude_unset=True)
    for field in ("callback_url", "escalation_webhook_url"):
        if changes.get(field):
            await check_target_url(field, changes[field], guard=guard, tenant_id=tenant_id)
    for field in ("callback_url", "mode"):
        if field in changes and changes[field] is None:
            raise InvalidRegistration(f"{field}: cannot be removed")
    if "retry_policy" in changes:
        changes["retry_policy"] = policy_to_json(body.retry_policy, policies)
    if "escalation_policy" in changes:
        del changes["escalation_policy"]
        await store_escalation_policy(session, row, body.escalation_policy, box=box, guard=guard)
    if "escalation_webhook_url" in changes:  # validated above as sent, stored sealed
        url = changes["escalation_webhook_url"]
        changes["escalation_webhook_url"] = seal_webhook_url(box, tenant_id, url)
    for field, value in changes.items():
        setattr(row, field, value)
    row.updated_at = datetime.now(UTC)
    await session.commit()
    return row


async def list_workflows(*, session: AsyncSession, tenant_id: uuid.UUID) -> list[Workflow]:
    """Return the tenant's workflows by name."""
    result = await session.exec(
        select(Workflow).where(Workflow.tenant_id == tenant_id).order_by(col(Workflow.name))
    )
    return list(result.all())
