"""Escalation policies: levels of typed responder targets, fallbacks and notification rules.

One grammar for `rules/escalation.yaml` (the default policy) and a workflow's own policy sent
through the API. Credentials (routing keys, API keys, webhook URLs) live only here and in the
sealed column; the workflow carries target types and indexes, never these values.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vocabulary import PageSeverity

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
OPSGENIE_URLS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
# A `webhook` target with this URL uses the workflow's own registered escalation_webhook_url.
WORKFLOW_WEBHOOK = "workflow"
DEFAULT_FALLBACK_AFTER = 3
MASK = "••••"
OpsgeniePriority = Literal["P1", "P2", "P3", "P4", "P5"]


class TargetType(StrEnum):
    """The kinds of responder a target is."""

    PAGERDUTY = "pagerduty"
    OPSGENIE = "opsgenie"
    SLACK = "slack"
    WEBHOOK = "webhook"


class LifecycleEvent(StrEnum):
    """Incident transitions a notification rule can name."""

    OPENED = "opened"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    KILLED = "killed"
    FLAPPING = "flapping"  # once per flap episode, not once per re-open


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


URL = Annotated[str, Field(min_length=8, max_length=2048, pattern=r"^https?://")]


class PagerDutyTarget(_Strict):
    """PagerDuty Events API v2: one service's integration (routing) key."""

    type: Literal["pagerduty"] = "pagerduty"
    routing_key: str = Field(pattern=r"^[A-Za-z0-9]{32}$")
    url: URL = PAGERDUTY_EVENTS_URL
    # The level's severity → the severity PagerDuty is sent (unmapped: sent as is).
    severity: dict[PageSeverity, PageSeverity] = {}


class OpsgenieTarget(_Strict):
    """Opsgenie Alert API v2: an API integration's key, in the US or EU region."""

    type: Literal["opsgenie"] = "opsgenie"
    api_key: str = Field(min_length=8, max_length=200, pattern=r"^[A-Za-z0-9-]+$")
    region: Literal["us", "eu"] = "us"
    url: URL | None = None  # overrides the region's API base URL
    responders: tuple[dict[str, str], ...] = ()
    priority: dict[PageSeverity, OpsgeniePriority] = {
        PageSeverity.CRITICAL: "P1",
        PageSeverity.ERROR: "P2",
        PageSeverity.WARNING: "P3",
        PageSeverity.INFO: "P5",
    }

    @property
    def base_url(self) -> str:
        """The API base URL (no trailing slash)."""
        return (self.url or OPSGENIE_URLS[self.region]).rstrip("/")


class SlackTarget(_Strict):
    """A Slack incoming webhook (its URL is the credential)."""

    type: Literal["slack"] = "slack"
    url: URL


class WebhookTarget(_Strict):
    """Any URL, signed like callbacks; `workflow` is the workflow's registered webhook."""

    type: Literal["webhook"] = "webhook"
    url: Annotated[str, Field(min_length=1, max_length=2048)]

    @model_validator(mode="after")
    def _url_or_workflow(self) -> WebhookTarget:
        if self.url != WORKFLOW_WEBHOOK and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL or {WORKFLOW_WEBHOOK!r}")
        return self


Target = Annotated[
    PagerDutyTarget | OpsgenieTarget | SlackTarget | WebhookTarget, Field(discriminator="type")
]


class EscalationLevel(_Strict):
    """One rung of the ladder: its targets, an optional fallback and the acknowledge timeout."""

    name: str = Field(min_length=1, max_length=200)
    ack_timeout_s: float = Field(gt=0, le=7 * 86_400)
    severity: PageSeverity = PageSeverity.ERROR
    targets: tuple[Target, ...] = Field(min_length=1, max_length=10)
    fallback: Target | None = None
    # Tries of a primary target before the fallback is paged instead.
    fallback_after: int = Field(default=DEFAULT_FALLBACK_AFTER, ge=1, le=10)

    @model_validator(mode="before")
    @classmethod
    def _legacy_webhook(cls, data: Any) -> Any:
        """Read the older `webhook: <url|workflow>` form as one webhook target."""
        if isinstance(data, dict) and "webhook" in data:
            data = dict(data)
            if "targets" in data:
                raise ValueError("give either webhook or targets, not both")
            data["targets"] = [{"type": "webhook", "url": data.pop("webhook")}]
        return data


class NotificationRule(_Strict):
    """On these lifecycle events, tell these targets (a message, not a page)."""

    on: tuple[LifecycleEvent, ...] = Field(min_length=1)
    targets: tuple[Target, ...] = Field(min_length=1, max_length=10)


class EscalationPolicy(_Strict):
    """The ordered levels and the notification rules."""

    levels: tuple[EscalationLevel, ...] = Field(min_length=1, max_length=10)
    notify: tuple[NotificationRule, ...] = ()

    def notification_targets(self, event: str) -> list[Target]:
        """The targets told about `event`, in rule order (a notification's index is here)."""
        return [t for rule in self.notify if event in rule.on for t in rule.targets]


def effective_policy(*policies: EscalationPolicy | None) -> EscalationPolicy:
    """Levels of the most specific policy given (workflow, tenant, default); every one's rules."""
    present = [policy for policy in policies if policy is not None]
    notify = tuple(rule for policy in present for rule in policy.notify)
    return EscalationPolicy(levels=present[0].levels, notify=notify)


def mask_credential(value: str) -> str:
    """Show a credential by its last four characters only."""
    return f"{MASK}{value[-4:]}"


def masked_target(target: Target) -> dict[str, Any]:
    """A target as the API and CLI show it: every credential as `••••last4`."""
    shown = target.model_dump(mode="json")
    for key in ("routing_key", "api_key"):
        if key in shown:
            shown[key] = mask_credential(shown[key])
    is_default_url = shown.get("url") in (None, PAGERDUTY_EVENTS_URL, WORKFLOW_WEBHOOK)
    if "url" in shown and not is_default_url:
        shown["url"] = mask_credential(shown["url"])
    return shown


def masked_policy(policy: EscalationPolicy) -> dict[str, Any]:
    """The whole policy with its credentials masked."""
    shown = policy.model_dump(mode="json", exclude_defaults=False)
    for level, original in zip(shown["levels"], policy.levels, strict=True):
        level["targets"] = [masked_target(t) for t in original.targets]
        level["fallback"] = original.fallback and masked_target(original.fallback)
    for rule, original_rule in zip(shown["notify"], policy.notify, strict=True):
        rule["targets"] = [masked_target(t) for t in original_rule.targets]
    return shown
