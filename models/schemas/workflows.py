"""Workflow registry bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag

from models.schemas.common import NAME_PATTERN, StrictBody
from rules.policy import OPEN_AFTER_MAX_COUNT
from rules.targets import EscalationPolicy
from vocabulary import ApprovalMode, WorkflowMode


class OpenAfterThreshold(StrictBody):
    """Hold remediation until `count` failures occur within `within_s` seconds."""

    count: int = Field(ge=1, le=OPEN_AFTER_MAX_COUNT, examples=[3])
    within_s: float = Field(gt=0, le=86_400, examples=[60])


class FlapSettings(StrictBody):
    """A signature that resolved `reopens` times within `within_s` opens `flapping`."""

    reopens: int = Field(default=5, ge=0, le=1000, examples=[5])
    within_s: float = Field(default=3600, gt=0, le=7 * 86_400, examples=[3600])
    quiet_s: float = Field(default=900, gt=0, le=86_400, examples=[900])


class InlineRetryPolicy(StrictBody):
    """A workflow's own retry policy, overriding the policy files."""

    max_attempts: int = Field(ge=1, le=50)
    initial_interval_s: float = Field(gt=0, le=86_400)
    multiplier: float = Field(ge=1.0, le=10.0)
    max_interval_s: float = Field(gt=0, le=86_400)
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)
    open_after: OpenAfterThreshold | None = Field(
        default=None,
        description="Store and count failures, but start remediation only when `count` of "
        "them occur within `within_s` seconds; fewer, and the incident closes "
        "`below_threshold` `within_s` after it was planned.",
    )
    approval: ApprovalMode = Field(
        default=ApprovalMode.NEVER,
        description="`first`: the first callback waits for an operator's approval; `every`: "
        "each one does; `never` (default): none does.",
    )
    flap: FlapSettings | Literal["off"] | None = Field(
        default=None,
        description="Flap damping: an incident whose signature resolved `reopens` times "
        "within `within_s` seconds before it opened is `flapping`, and no callback runs until "
        "`quiet_s` seconds pass without a failure. `off` (or `reopens: 0`) turns it off; "
        "unset: the `flap` of rules/retry_policies.yaml.",
    )


def _policy_form(value: object) -> str:
    if value is None:
        return "none"
    return "inline" if isinstance(value, dict | InlineRetryPolicy) else "name"


# A string names a policy file entry; an object is an inline policy. Telling them apart first
# means a mistake is reported once, against the form that was sent, not against both forms.
RetryPolicyRef = Annotated[
    Annotated[str, Tag("name")]
    | Annotated[InlineRetryPolicy, Tag("inline")]
    | Annotated[None, Tag("none")],
    Discriminator(_policy_form),
]


def _escalation_form(value: object) -> str:
    if value is None:
        return "none"
    return "name" if isinstance(value, str) else "inline"


# A string names one of the tenant's named escalation policies; an object is the policy.
EscalationPolicyRef = Annotated[
    Annotated[str, Tag("name"), Field(pattern=NAME_PATTERN)]
    | Annotated[EscalationPolicy, Tag("inline")]
    | Annotated[None, Tag("none")],
    Discriminator(_escalation_form),
]
URL_FIELD = Field(min_length=8, max_length=2048, examples=["https://hooks.example.com/retry"])
MODE_DESCRIPTION = (
    "`live` sends callbacks and pages; `dry_run` runs the whole lifecycle but records each "
    "callback and page as an action `skipped_dry_run` with what would have been sent. "
    "A change applies from the next attempt."
)


class WorkflowCreate(StrictBody):
    """Register a client workflow and where to call it back."""

    name: str = Field(pattern=NAME_PATTERN, examples=["billing-sync"])
    description: str = Field(default="", max_length=2000)
    callback_url: str = URL_FIELD
    escalation_webhook_url: str | None = Field(default=None, min_length=8, max_length=2048)
    retry_policy: RetryPolicyRef = Field(
        default=None,
        description="A policy name from retry_policies.yaml, or an inline policy.",
        examples=["standard"],
    )
    escalation_policy: EscalationPolicyRef = Field(
        default=None,
        description="The workflow's own escalation levels and notification rules (typed "
        "targets; stored encrypted), or the name of one of the tenant's named policies. "
        "Unset: the tenant's policy, else rules/escalation.yaml.",
    )
    active: bool = True
    mode: WorkflowMode = Field(default=WorkflowMode.LIVE, description=MODE_DESCRIPTION)


class WorkflowUpdate(StrictBody):
    """Fields that may change; omitted fields stay as they are."""

    description: str | None = Field(default=None, max_length=2000)
    callback_url: str | None = Field(default=None, min_length=8, max_length=2048)
    escalation_webhook_url: str | None = Field(default=None, min_length=8, max_length=2048)
    retry_policy: RetryPolicyRef = None
    escalation_policy: EscalationPolicyRef = None
    active: bool | None = None
    mode: WorkflowMode | None = Field(default=None, description=MODE_DESCRIPTION)


class WorkflowOut(BaseModel):
    """A registered workflow."""

    id: uuid.UUID
    name: str
    description: str
    callback_url: str
    escalation_webhook_url: str | None = Field(
        description="Masked as `scheme://host/…••••last4`: the URL may embed a credential, "
        "so it is stored encrypted and never shown whole after registration.",
        examples=["https://hooks.example.com/…••••x9Zq"],
    )
    retry_policy: RetryPolicyRef
    escalation_policy: dict[str, Any] | str | None = Field(
        default=None,
        description="The workflow's own escalation policy, every credential shown as "
        "`••••last4`, or the name of the named policy it uses; null: the tenant's or default.",
    )
    active: bool
    mode: WorkflowMode
    created_at: datetime
    updated_at: datetime | None
