"""Typed, validated policy files; a bad file fails startup naming the file, key and reason."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from rules.targets import EscalationPolicy
from vocabulary import ApprovalMode, Severity

CODE_PATTERN = r"^[A-Z][A-Z0-9_]{0,99}$"
# The most failures an `open_after` threshold may ask for: the workflow keeps that many times.
OPEN_AFTER_MAX_COUNT = 100
ModelT = TypeVar("ModelT", bound=BaseModel)


class PolicyError(ValueError):
    """A policy file is missing or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorCode(_Strict):
    """One catalogue entry of `error_codes.yaml`."""

    category: str = Field(min_length=1)
    severity: Severity
    retryable: bool
    description: str = ""
    aliases: tuple[Annotated[str, Field(pattern=CODE_PATTERN)], ...] = ()
    patterns: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _patterns_compile(self) -> ErrorCode:
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from exc
        return self


class ErrorCatalog(_Strict):
    """`error_codes.yaml`: codes, aliases and message patterns."""

    codes: dict[Annotated[str, Field(pattern=CODE_PATTERN)], ErrorCode]
    default_code: str
    _aliases: dict[str, str] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any, /) -> None:
        """Index aliases once for O(1) lookups."""
        self._aliases.update(
            {alias: code for code, entry in self.codes.items() for alias in entry.aliases}
        )

    @model_validator(mode="after")
    def _consistent(self) -> ErrorCatalog:
        if self.default_code not in self.codes:
            raise ValueError(f"default_code {self.default_code!r} is not a listed code")
        seen: dict[str, str] = {}
        for code, entry in self.codes.items():
            for alias in entry.aliases:
                if alias in self.codes or alias in seen:
                    raise ValueError(f"alias {alias!r} of {code} is already taken")
                seen[alias] = code
        return self

    def canonical(self, code: str) -> str:
        """Return the catalogue code an alias stands for (or `code` itself)."""
        upper = code.strip().upper()
        if upper in self.codes:
            return upper
        return self._aliases.get(upper, upper)

    def match_message(self, message: str) -> str | None:
        """Return the first code whose message pattern matches, if any."""
        for code, entry in self.codes.items():
            if any(re.search(p, message, re.IGNORECASE) for p in entry.patterns):
                return code
        return None

    def entry(self, code: str) -> ErrorCode:
        """Return the entry of `code`, or of the default code when it is unknown."""
        return self.codes.get(self.canonical(code), self.codes[self.default_code])


class OpenAfter(_Strict):
    """Remediation starts only when `count` failures occur within `within_s` seconds."""

    count: int = Field(ge=1, le=OPEN_AFTER_MAX_COUNT)
    within_s: float = Field(gt=0, le=86_400)


class FlapDamping(_Strict):
    """A signature that resolved `reopens` times within `within_s` opens `flapping`.

    Remediation then waits until `quiet_s` seconds pass without a failure; `reopens: 0`
    (or `flap: off`) turns damping off.
    """

    reopens: int = Field(default=5, ge=0, le=1000)
    within_s: float = Field(default=3600, gt=0, le=7 * 86_400)
    quiet_s: float = Field(default=900, gt=0, le=86_400)


FLAP_OFF = FlapDamping(reopens=0)


def flap_setting(value: Any) -> Any:
    """Read `flap: off` (YAML's `off` is false; JSON's false too) as damping turned off."""
    return FLAP_OFF if value is False or value == "off" else value


class RetryPolicy(_Strict):
    """How often and how patiently a failed step is retried."""

    max_attempts: int = Field(ge=1, le=50)
    initial_interval_s: float = Field(gt=0, le=86_400)
    multiplier: float = Field(ge=1.0, le=10.0)
    max_interval_s: float = Field(gt=0, le=86_400)
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)
    open_after: OpenAfter | None = None
    approval: ApprovalMode = ApprovalMode.NEVER  # which attempts wait for an operator
    flap: FlapDamping | None = None  # None: the policy file's `flap`

    _flap_off = field_validator("flap", mode="before")(flap_setting)

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_interval_s < self.initial_interval_s:
            raise ValueError("max_interval_s must be ≥ initial_interval_s")
        return self


class RetryPolicies(_Strict):
    """`retry_policies.yaml`: named policies and how one is chosen."""

    policies: dict[str, RetryPolicy]
    default: str
    by_category: dict[str, str] = {}
    by_vendor: dict[str, str] = {}
    flap: FlapDamping = FlapDamping()  # flap damping of every policy without its own

    _flap_off = field_validator("flap", mode="before")(flap_setting)

    @model_validator(mode="after")
    def _names_exist(self) -> RetryPolicies:
        for where, name in [
            ("default", self.default),
            *self.by_category.items(),
            *self.by_vendor.items(),
        ]:
            if name not in self.policies:
                raise ValueError(f"{where} names unknown policy {name!r}")
        return self


class CircuitBreakerSettings(_Strict):
    """resilience4j-style breaker settings of one vendor."""

    window_size: int = Field(default=20, ge=1, le=1000)
    minimum_calls: int = Field(default=5, ge=1, le=1000)
    failure_rate_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    open_duration_s: float = Field(default=30, gt=0, le=86_400)
    half_open_probes: int = Field(default=1, ge=1, le=100)


class DegradedAfter(_Strict):
    """The vendor is degraded once `incidents` open incidents naming it, from at least
    `workflows` source workflows, opened within `within_s` seconds; `incidents: 0` (or
    `degraded_after: off`) turns this trigger off. A failed probe waits `probe_every_s`
    (unset: the breaker's `open_duration_s`) before the next."""

    incidents: int = Field(default=5, ge=0, le=10_000)
    within_s: float = Field(default=60, gt=0, le=86_400)
    workflows: int = Field(default=2, ge=1, le=1000)
    probe_every_s: float | None = Field(default=None, gt=0, le=86_400)


DEGRADED_OFF = DegradedAfter(incidents=0)


def degraded_setting(value: Any) -> Any:
    """Read `degraded_after: off` (YAML's `off` is false) as the count trigger turned off."""
    return DEGRADED_OFF if value is False or value == "off" else value


class VendorSettings(_Strict):
    """Safety settings of one vendor."""

    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    rate_limit_per_s: float = Field(default=10, gt=0, le=100_000)
    call_timeout_s: float = Field(default=10, gt=0, le=300)
    # A vendor incident opens when this many incidents name the vendor (besides its breaker).
    degraded_after: DegradedAfter = DegradedAfter()

    _degraded_off = field_validator("degraded_after", mode="before")(degraded_setting)

    def probe_every_s(self) -> float:
        """How long a vendor incident opened by count waits after a failed probe."""
        return self.degraded_after.probe_every_s or self.circuit_breaker.open_duration_s


class VendorPolicies(_Strict):
    """`vendors.yaml`: defaults and per-vendor overrides."""

    defaults: VendorSettings = VendorSettings()
    vendors: dict[str, VendorSettings] = {}

    def for_vendor(self, name: str | None) -> VendorSettings:
        """Return the settings of `name`, or the defaults."""
        return self.vendors.get(name or "", self.defaults)


class Policies(_Strict):
    """Every policy file, loaded and validated together."""

    error_codes: ErrorCatalog
    retry: RetryPolicies
    vendors: VendorPolicies
    escalation: EscalationPolicy


def _read(directory: Path, name: str, model: type[ModelT]) -> ModelT:
    path = directory / name
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PolicyError(f"{path}: cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise PolicyError(f"{path}: {problems}") from None


def load_policies(directory: Path | None = None) -> Policies:
    """Read and validate the four policy files (the shipped ones by default)."""
    directory = directory or Path(str(files("rules")))
    return Policies(
        error_codes=_read(directory, "error_codes.yaml", ErrorCatalog),
        retry=_read(directory, "retry_policies.yaml", RetryPolicies),
        vendors=_read(directory, "vendors.yaml", VendorPolicies),
        escalation=_read(directory, "escalation.yaml", EscalationPolicy),
    )
