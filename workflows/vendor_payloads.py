"""The input, state and messages of `VendorIncidentWorkflow` and of its children's link to it.

Plain dataclasses only: imported by the workflow sandbox, the activities and the tests alike.
`VendorIncidentState` is carried whole across continue-as-new, so a new field needs a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vocabulary import VENDOR_WORKFLOW_PREFIX, IncidentStatus


def vendor_workflow_id(tenant_id: str, vendor: str) -> str:
    """The id of a tenant's vendor incident for one vendor."""
    return f"{VENDOR_WORKFLOW_PREFIX}{tenant_id}:{vendor}"


@dataclass
class ChildLink:
    """`child_linked`: an incident held by the vendor incident (`parent_incident_id` its row)."""

    incident_id: str
    workflow_id: str
    source_workflow: str
    parent_incident_id: str
    cause: str = ""  # what linked it: "breaker opened", "5 incidents within 60 s"
    by_count: bool = False  # linked because enough incidents named the vendor (not the breaker)


@dataclass
class ProbeReport:
    """`probe_result`: how the probe a child made for its parent went, and the breaker after."""

    incident_id: str
    called: bool  # False: the gate let no call through (nothing was learnt)
    breaker: str  # the breaker state after the outcome was counted
    detail: str = ""
    succeeded: bool = False  # the call succeeded (resolves a vendor incident opened by count)


@dataclass
class VendorProbe:
    """`vendor_probe`: make the next callback now, as the vendor incident's probe."""

    parent_incident_id: str


@dataclass
class VendorRelease:
    """`vendor_release`: the vendor incident ended; resume remediation after `delay_s`."""

    parent_incident_id: str
    delay_s: float
    reason: str


@dataclass
class LinkRequest:
    """Link a child to its tenant's vendor incident, starting that incident if none is open."""

    tenant_id: str
    vendor: str
    incident_id: str
    workflow_id: str
    source_workflow: str
    cause: str


@dataclass
class LinkResult:
    """The vendor incident a child is held by."""

    parent_workflow_id: str
    parent_incident_id: str


@dataclass
class VendorRef:
    """One tenant's vendor, and the vendor incident about it (once it has a row)."""

    tenant_id: str
    vendor: str
    incident_id: str = ""


@dataclass
class BreakerReading:
    """A vendor's breaker now: its state and, when open, the seconds until half-open."""

    state: str
    open_for_s: float = 0.0
    probe_every_s: float = 0.0  # the wait after a failed probe of one opened by count


@dataclass
class VendorRecordRequest:
    """Refresh the vendor incident's row (and a transition row when `reason` names a cause)."""

    tenant_id: str
    incident_id: str
    status: IncidentStatus
    children: int
    probes: int
    reason: str
    new_cause: bool = False
    closed: bool = False


@dataclass
class PageTargets:
    """The first level of the tenant's escalation policy: its name, severity and target types."""

    level_name: str
    severity: str
    targets: list[str] = field(default_factory=list)


@dataclass
class VendorIncidentState:
    """Everything the vendor incident knows; carried whole across continue-as-new."""

    incident_id: str = ""
    status: IncidentStatus = IncidentStatus.OPEN
    children: list[ChildLink] = field(default_factory=list)
    released: list[str] = field(default_factory=list)  # children's incident ids
    opened_at: datetime | None = None
    paged: list[int] = field(default_factory=list)  # indexes of level-1 targets that took it
    page: PageTargets | None = None
    probes: int = 0
    probing: str = ""  # the child asked to probe, until it reports
    probe_turn: int = 0  # round-robin over the children
    last_probe: str = ""
    close_reason: str = ""
    closed_origin: str = ""
    runs: int = 1
    # Opened by count (patched: vendor-parents-by-count): its breaker may never open, so a
    # successful probe resolves it; once the breaker is seen open, the breaker decides.
    by_count: bool = False
    breaker_opened: bool = False
    next_probe_at: datetime | None = None


@dataclass
class VendorIncidentInput:
    """A tenant's vendor incident; `state` is set by continue-as-new."""

    tenant_id: str
    vendor: str
    state: VendorIncidentState | None = None


@dataclass
class VendorIncidentResult:
    """How the vendor incident ended."""

    status: IncidentStatus
    children: int
    probes: int
    reason: str
