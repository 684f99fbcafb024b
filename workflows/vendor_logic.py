"""Pure helpers of `VendorIncidentWorkflow`: the page, the release schedule, the Web UI story.

Deterministic code only: it runs inside the workflow sandbox.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from vocabulary import TERMINAL_STATUSES, BreakerState
from workflows.activity_payloads import DeliveryRequest
from workflows.vendor_payloads import (
    ChildLink,
    ProbeReport,
    VendorIncidentInput,
    VendorIncidentState,
    VendorRecordRequest,
)

# Twelve incidents failing together link within a few seconds: the page waits this long so it
# goes out once, with all of them counted.
PAGE_GRACE_S = 5.0
# Released children resume this far apart (within the bounds), so a vendor that just
# recovered is not hit by every held incident in the same second.
RELEASE_STEP_S = 0.25
MIN_RELEASE_SPREAD_S = 2.0
MAX_RELEASE_SPREAD_S = 30.0
SHOWN_WORKFLOWS = 10
# A vendor incident opened because enough incidents named the vendor, not by its breaker.
VENDOR_PARENTS_BY_COUNT = "vendor-parents-by-count"


def is_ended(state: VendorIncidentState) -> bool:
    """Tell whether the vendor incident has ended."""
    return state.status in TERMINAL_STATUSES


def counted_only(state: VendorIncidentState) -> bool:
    """Tell whether only its probes can end it: opened by count, its breaker never seen open."""
    return state.by_count and not state.breaker_opened


def recovered(state: VendorIncidentState, report: ProbeReport) -> bool:
    """Tell whether a probe shows the vendor recovered: its breaker closed after it, or, for
    one opened by count, the probe's call succeeded (whether or not the breaker ever opened)."""
    if state.by_count and report.succeeded:
        return True
    return report.breaker == BreakerState.CLOSED and not counted_only(state)


def probe_wait_s(state: VendorIncidentState, probe_every_s: float, now: datetime) -> float:
    """Seconds until an incident opened by count asks its next probe (its first: one interval
    after it opened; then one interval after each failed probe)."""
    opened = state.opened_at or now
    due = state.next_probe_at or opened + timedelta(seconds=probe_every_s)
    return max(0.0, (due - now).total_seconds())


def workflows_affected(children: list[ChildLink]) -> list[str]:
    """The source workflows of the held incidents, in the order they linked, each once."""
    return list(dict.fromkeys(child.source_workflow for child in children))


def headline(inp: VendorIncidentInput, state: VendorIncidentState) -> str:
    """One line: the vendor, how many incidents it holds and in which workflows."""
    names = workflows_affected(state.children)
    shown = ", ".join(names[:SHOWN_WORKFLOWS]) + (" …" if len(names) > SHOWN_WORKFLOWS else "")
    return (
        f"{inp.vendor} degraded: {len(state.children)} incident(s) held across "
        f"{len(names)} workflow(s): {shown}"
    )


def release_delays(count: int) -> list[float]:
    """Each released child's delay, spread evenly over a window that grows with their number."""
    spread = min(MAX_RELEASE_SPREAD_S, max(MIN_RELEASE_SPREAD_S, count * RELEASE_STEP_S))
    return [round(spread * index / max(count, 1), 3) for index in range(count)]


def page_request(
    inp: VendorIncidentInput,
    state: VendorIncidentState,
    *,
    workflow_id: str,
    event: str,
    index: int,
    tries: int,
) -> DeliveryRequest:
    """One event of the vendor incident for target `index` of the tenant's first level."""
    page = state.page
    return DeliveryRequest(
        tenant_id=inp.tenant_id,
        incident_id=state.incident_id,
        workflow_id=workflow_id,
        source_workflow=f"vendor:{inp.vendor}",
        event=event,
        level=1,
        index=index,
        tries=tries,
        severity=page.severity if page else "error",
        level_name=page.level_name if page else "",
        summary=headline(inp, state),
        error_code="VENDOR_DEGRADED",
        vendor=inp.vendor,
        event_count=len(state.children),
        attempts=state.probes,
        correlation_id=workflow_id,
        status=str(state.status),
    )


def record_request(
    inp: VendorIncidentInput,
    state: VendorIncidentState,
    incident_id: str,
    reason: str,
    *,
    new_cause: bool = True,
    closed: bool = False,
) -> VendorRecordRequest:
    """The row of `incident_id` as the vendor incident sees it now, with `reason`."""
    return VendorRecordRequest(
        tenant_id=inp.tenant_id,
        incident_id=incident_id,
        status=state.status,
        children=len(state.children),
        probes=state.probes,
        reason=reason,
        new_cause=new_cause,
        closed=closed,
    )


def details_markdown(inp: VendorIncidentInput, state: VendorIncidentState) -> str:
    """The vendor incident's story for the Web UI's current details."""
    lines = [
        f"**vendor incident · {inp.vendor}** — {state.status}",
        "",
        headline(inp, state),
        f"- probes: {state.probes}" + (f" (last: {state.last_probe})" if state.last_probe else ""),
        f"- paged targets: {len(state.paged)}",
        f"- released: {len(state.released)} of {len(state.children)}",
    ]
    if state.by_count and state.children:
        lines.append(f"- opened by count: {state.children[0].cause}")
    if state.probing:
        lines.append(f"- probing through incident {state.probing}")
    if state.close_reason:
        lines.append(f"- ended: {state.close_reason}")
    lines += ["", "| incident | workflow |", "|---|---|"]
    lines += [f"| {c.incident_id} | {c.source_workflow} |" for c in state.children[-20:]]
    return "\n".join(lines)
